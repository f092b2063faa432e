/* Freestanding helpers: memory, strings, printing, panics. */
#pragma once
#include "types.h"

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
const char *strstr(const char *h, const char *n);

void kputs(const char *s);
void kprintf(const char *fmt, ...);
void panic(const char *fmt, ...) __attribute__((noreturn));
void shutdown(int failure) __attribute__((noreturn));
