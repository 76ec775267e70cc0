/* greet.h - public interface of libgreet, the tiny "external" shared
 * library used by the wheelvet example.
 *
 * In a real project this would be some system or third-party library
 * (libpng, libssl, ...) that a C extension links against and that a
 * wheel repair tool has to notice and, later, vendor into the wheel.
 */
#ifndef GREET_H
#define GREET_H

/* Version string of the library, e.g. "1.0". */
const char *greet_version(void);

/* Return a newly allocated "Hello, NAME! (from libgreet 1.0)" string,
 * or NULL if out of memory.  Release it with greet_free(). */
char *greet_message(const char *name);

/* Free a string returned by greet_message(). */
void greet_free(char *message);

#endif /* GREET_H */
