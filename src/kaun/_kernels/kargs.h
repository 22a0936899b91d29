/* kargs.h: the one argument block of every compiled kernel (see runtime.c and codegen.py). */
#ifndef KAUN_KARGS_H
#define KAUN_KARGS_H
#include <stdint.h>

#define KAUN_ABI 1
#define KAUN_MAX_IN 3
#define KAUN_MAX_OUT 2
#define KAUN_MAX_P 8

/* Elements are laid out in `rows` rows of `len` elements; operand j of row r starts at
   in[j] + r * istride[j] (in elements), likewise the outputs. A plain array is one row. */
typedef struct {
    const void *in[KAUN_MAX_IN];
    void *out[KAUN_MAX_OUT];
    int64_t len;
    int64_t istride[KAUN_MAX_IN];
    int64_t ostride[KAUN_MAX_OUT];
    double p[KAUN_MAX_P];
} kaun_args;

#endif
