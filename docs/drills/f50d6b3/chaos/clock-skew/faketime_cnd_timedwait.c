/*
 * Preloaded before libfaketime wherever a node runs with a skewed wall clock
 * (the clock-skew test, the chaos drill; see clock_skew.rs).
 *
 * librdkafka times its waits with C11 cnd_timedwait and an absolute deadline
 * taken from gettimeofday, which libfaketime shifts. glibc's cnd_timedwait
 * calls its internal pthread_cond_timedwait directly, past libfaketime's
 * translation of deadlines back to the real clock. With the clock an hour
 * ahead, every timed wait that had to time out lasted an hour (gdb on a hung
 * start: in rd_kafka_metadata; 5 starts in 16 hung before their first log
 * line); with it an hour behind, every timed wait returned at once and the
 * Kafka threads spun (4.4 CPU seconds in 5 s). With this file: 0 hangs in 16
 * starts, idle CPU as an unskewed node's.
 * Routing the call through the public pthread_cond_timedwait lets libfaketime
 * translate the deadline, as it does for every other timed wait. glibc's
 * cnd_t and mtx_t wrap pthread_cond_t and pthread_mutex_t.
 */
#include <errno.h>
#include <pthread.h>
#include <threads.h>

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mutex,
                  const struct timespec *restrict deadline) {
    switch (pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex, deadline)) {
    case 0:
        return thrd_success;
    case ETIMEDOUT:
        return thrd_timedout;
    default:
        return thrd_error;
    }
}
