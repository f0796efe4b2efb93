/* check.h: the C tests' tiny framework. Every CHECK counts; a failure prints file:line and
 * the expression, and the binary exits non-zero. The last line is "N passed, N failed". */
#ifndef CRAFT_CHECK_H
#define CRAFT_CHECK_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "craft.h"

static int check_passed_, check_failed_;
static const char *check_test_name_ = "";

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (cond) check_passed_++;                                                                           \
        else {                                                                                               \
            check_failed_++;                                                                                 \
            fprintf(stderr, "FAIL %s (%s:%d): %s\n", check_test_name_, __FILE__, __LINE__, #cond);           \
        }                                                                                                    \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                                 \
    do {                                                                                                     \
        if (cond) check_passed_++;                                                                           \
        else {                                                                                               \
            check_failed_++;                                                                                 \
            fprintf(stderr, "FAIL %s (%s:%d): %s: ", check_test_name_, __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)
/* A craft call that must succeed. */
#define CHECK_OK(call)                                                                                       \
    do {                                                                                                     \
        int rc_ = (call);                                                                                    \
        if (rc_ == CRAFT_OK) check_passed_++;                                                                \
        else {                                                                                               \
            check_failed_++;                                                                                 \
            fprintf(stderr, "FAIL %s (%s:%d): %s -> %d: %s\n", check_test_name_, __FILE__, __LINE__, #call,  \
                    rc_, craft_last_error());                                                                \
        }                                                                                                    \
    } while (0)
/* A craft call that must fail with the given status. */
#define CHECK_ERR(call, code)                                                                                \
    do {                                                                                                     \
        int rc_ = (call);                                                                                    \
        if (rc_ == (code)) check_passed_++;                                                                  \
        else {                                                                                               \
            check_failed_++;                                                                                 \
            fprintf(stderr, "FAIL %s (%s:%d): %s -> %d, expected %d (%s)\n", check_test_name_, __FILE__,     \
                    __LINE__, #call, rc_, (code), craft_last_error());                                       \
        }                                                                                                    \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                                                \
    do {                                                                                                     \
        double a_ = (a), b_ = (b);                                                                           \
        if (fabs(a_ - b_) <= (tol)) check_passed_++;                                                         \
        else {                                                                                               \
            check_failed_++;                                                                                 \
            fprintf(stderr, "FAIL %s (%s:%d): %s = %.9g vs %s = %.9g (tol %g)\n", check_test_name_,          \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));                                      \
        }                                                                                                    \
    } while (0)

#define RUN(fn)                                                                                              \
    do {                                                                                                     \
        check_test_name_ = #fn;                                                                              \
        int f0_ = check_failed_;                                                                             \
        fn();                                                                                                \
        fprintf(stderr, "%s %s\n", check_failed_ == f0_ ? "ok  " : "FAIL", #fn);                             \
    } while (0)
#define CHECK_SUMMARY()                                                                                      \
    (printf("%d passed, %d failed\n", check_passed_, check_failed_), check_failed_ ? 1 : 0)
#endif
