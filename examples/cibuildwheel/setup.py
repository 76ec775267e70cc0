from setuptools import Extension, setup

setup(ext_modules=[Extension("hello", ["hellomodule.c"], libraries=["hello"], library_dirs=["/usr/local/lib"])])
