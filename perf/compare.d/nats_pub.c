// JetStream publisher for perf/compare, on the NATS C client (Debian's
// libnats-dev): C producers on one connection, each keeping one batch of B
// asynchronous JetStream publishes in flight and sending the next batch once
// every PubAck of the last one is back; for a fixed duration, or with --rate
// on a fixed schedule of R records/s over all producers (latency timed from
// each batch's intended send time: no coordinated omission). With --warmup S
// the same load runs S seconds first, and batches due then are not counted.
// Prints one JSON object like runnel-bench --json's essentials: records/s,
// MB/s, ack latency percentiles (µs), the client's own CPU.
//
//   cc -O2 -o nats_pub nats_pub.c -lnats -lpthread
//   nats_pub --server 127.0.0.1:4222 --record-size 1024 --producers 16
//            --batch-records 100 --duration 5 [--rate 50000] [--warmup 1]
#include <nats/nats.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int *outstanding;  // per producer: publishes of its batch not yet acked
static int *ready;        // per producer: 1 once its batch is fully acked
static int64_t *lat;      // ack latencies, ns
static size_t nlat, caplat;
static long errors;
static int64_t measure_from;  // batches due before it (the warm-up) are not counted

struct header { int64_t start_ns; int32_t producer; };

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  (void)js; (void)closure; (void)pae;
  struct header h;
  memcpy(&h, natsMsg_GetData(msg), sizeof h);
  int64_t l = now_ns() - h.start_ns;
  pthread_mutex_lock(&mu);
  if (pa == NULL) {
    errors++;
  } else if (h.start_ns >= measure_from) {
    if (nlat == caplat) {
      caplat = caplat ? caplat * 2 : (1u << 20);
      lat = realloc(lat, caplat * sizeof *lat);
    }
    lat[nlat++] = l;
  }
  if (--outstanding[h.producer] == 0) {
    ready[h.producer] = 1;
    pthread_cond_signal(&cv);
  }
  pthread_mutex_unlock(&mu);
  natsMsg_Destroy(msg);
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what, natsStatus s) {
  fprintf(stderr, "nats_pub: %s: %s\n", what, natsStatus_GetText(s));
  nats_PrintLastErrorStack(stderr);
  exit(1);
}

int main(int argc, char **argv) {
  const char *server = "127.0.0.1:4222";
  int size = 1024, conc = 1, batch = 100;
  double duration = 5, rate = 0, warmup = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--server")) server = argv[i + 1];
    else if (!strcmp(argv[i], "--record-size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--producers")) conc = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch-records")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
    else { fprintf(stderr, "nats_pub: unknown option %s\n", argv[i]); return 2; }
  }
  if (size < (int)sizeof(struct header)) size = sizeof(struct header);

  char url[256];
  snprintf(url, sizeof url, "nats://%s", server);
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsStatus s;
  if ((s = natsOptions_Create(&o)) != NATS_OK) die("options", s);
  natsOptions_SetURL(o, url);
  natsOptions_SetIOBufSize(o, 1 << 20);
  natsOptions_SetMaxPendingMsgs(o, 1 << 20);  // of the ack inbox (×1024 must fit an int)
  if ((s = natsConnection_Connect(&nc, o)) != NATS_OK) die("connect", s);

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = (int64_t)conc * batch + 1;
  jo.PublishAsync.AckHandler = on_ack;
  jo.Wait = 60000;
  if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) die("jetstream", s);

  jsErrCode jerr = 0;
  js_DeleteStream(js, "bench", NULL, &jerr);  // absent is fine
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char *subjects[] = {"bench.s"};
  sc.Name = "bench";
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = 1;
  jsStreamInfo *si = NULL;
  if ((s = js_AddStream(&si, js, &sc, NULL, &jerr)) != NATS_OK) die("add stream", s);
  jsStreamInfo_Destroy(si);

  outstanding = calloc(conc, sizeof *outstanding);
  ready = calloc(conc, sizeof *ready);
  int64_t *due = calloc(conc, sizeof *due);
  long *sent = calloc(conc, sizeof *sent);
  char *buf = calloc(1, size);
  for (int i = 0; i < size; i++) buf[i] = 'a' + i % 26;

  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  const int64_t t0 = now_ns();
  measure_from = t0 + (int64_t)(warmup * 1e9);
  const int64_t end = measure_from + (int64_t)(duration * 1e9);
  // Under --rate, producer p sends its k-th batch at t0 + (k * conc + p) * interval.
  const double interval = rate > 0 ? batch * 1e9 / rate : 0;
  for (int p = 0; p < conc; p++) {
    ready[p] = 1;
    due[p] = rate > 0 ? t0 + (int64_t)(p * interval) : t0;
  }

  pthread_mutex_lock(&mu);
  for (;;) {
    int64_t now = now_ns();
    if (now >= end) break;
    int pick = -1;
    for (int p = 0; p < conc; p++)
      if (ready[p] && (pick < 0 || due[p] < due[pick])) pick = p;
    if (pick < 0 || (rate > 0 && due[pick] > now)) {
      int64_t until = pick < 0 ? now + 100000000 : due[pick];
      if (until > end) until = end;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t abs_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (until - now);
      ts.tv_sec = abs_ns / 1000000000;
      ts.tv_nsec = abs_ns % 1000000000;
      pthread_cond_timedwait(&cv, &mu, &ts);
      continue;
    }
    if (rate > 0 && due[pick] >= end) { ready[pick] = 0; continue; }
    struct header h = {rate > 0 ? due[pick] : now, pick};
    memcpy(buf, &h, sizeof h);
    ready[pick] = 0;
    outstanding[pick] = batch;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < batch; i++)
      if ((s = js_PublishAsync(js, "bench.s", buf, size, NULL)) != NATS_OK) die("publish", s);
    pthread_mutex_lock(&mu);
    sent[pick]++;
    if (rate > 0) due[pick] = t0 + (int64_t)((sent[pick] * conc + pick) * interval);
  }
  pthread_mutex_unlock(&mu);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK) die("waiting for acks", s);
  const int64_t t1 = now_ns();
  const double seconds = (t1 - measure_from) / 1e9, all_seconds = (t1 - t0) / 1e9;
  getrusage(RUSAGE_SELF, &r1);
  double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
               (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;

  pthread_mutex_lock(&mu);
  size_t n = nlat;
  qsort(lat, n, sizeof *lat, cmp64);
#define PCT(q) (n ? lat[(size_t)((q) * n + 0.999999) > n ? n - 1 : (size_t)((q) * n + 0.999999) - 1] / 1e3 : 0)
  printf("{\"records\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"records_per_s\":%.1f,\"mb_per_s\":%.2f,"
         "\"p50_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"client_cpu_pct\":%.1f}\n",
         n, errors, seconds, n / seconds, n * (double)size / seconds / 1e6,
         PCT(0.5), PCT(0.99), PCT(0.999), 100 * cpu / all_seconds);
  pthread_mutex_unlock(&mu);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  return 0;
}
