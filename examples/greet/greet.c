/* greet.c - implementation of libgreet (see greet.h).
 *
 * Built as libgreet.so.1 with the version script greet.map, so every
 * exported symbol carries the version node GREET_1.0 (the same mechanism
 * glibc uses for GLIBC_2.17 and friends).
 */
#include <stdio.h>
#include <stdlib.h>

#include "greet.h"

#define GREET_VERSION "1.0"

const char *greet_version(void)
{
    return GREET_VERSION;
}

char *greet_message(const char *name)
{
    static const char fmt[] = "Hello, %s! (from libgreet %s)";
    /* First call measures, second call writes. */
    int len = snprintf(NULL, 0, fmt, name, GREET_VERSION);
    if (len < 0)
        return NULL;
    char *buf = malloc((size_t)len + 1);
    if (buf != NULL)
        snprintf(buf, (size_t)len + 1, fmt, name, GREET_VERSION);
    return buf;
}

void greet_free(char *message)
{
    free(message);
}
