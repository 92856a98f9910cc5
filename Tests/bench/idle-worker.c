/*
 * A worker that only waits, for the memory cost of 10,000 tracked workers: no libc and no dynamic
 * loader (built with -static -nostdlib), so each copy costs the machine a few pages, not a megabyte.
 * x86_64 and aarch64; Tests/bench/run falls back to /bin/sleep elsewhere.
 */
void _start(void) {
    for (;;) {
#if defined(__x86_64__)
        /* pause(2) */
        __asm__ volatile("syscall" : : "a"(34) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
        /* ppoll(NULL, 0, NULL, NULL): waits for a signal, as pause does */
        register long x8 __asm__("x8") = 73;
        register long x0 __asm__("x0") = 0;
        register long x1 __asm__("x1") = 0;
        register long x2 __asm__("x2") = 0;
        register long x3 __asm__("x3") = 0;
        __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
#else
#error "no idle loop for this architecture"
#endif
    }
}
