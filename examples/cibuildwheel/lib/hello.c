/* libhello.so.1: a library outside every manylinux/musllinux policy, built
 * into /usr/local/lib by before-all, so that the repair has to graft it. */
int hello_answer(void) { return 42; }
