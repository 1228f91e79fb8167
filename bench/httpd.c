// Minimal HTTP/1.1 server for `make bench` (server side of wrk): epoll, non-blocking, one fixed 6-byte response, keep-alive
// unless the request says `Connection: close`. Small and native so the direct baseline is not limited by the server app.
// usage: httpd IP PORT [THREADS]   (threads share the port with SO_REUSEPORT; prints {"listening":...} when ready)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 8192
static const char RESP_KA[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";
static const char RESP_CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";

struct conn { int fd; size_t len; char buf[BUF]; };
static struct sockaddr_in addr;

static int listener(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  if (fd < 0) { perror("socket"); exit(1); }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); exit(1); }
  if (listen(fd, 4096) < 0) { perror("listen"); exit(1); }
  return fd;
}

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Answers every complete request in the buffer; returns 0 when the connection must be closed. */
static int serve(struct conn *c) {
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len < BUF;  /* a header larger than the buffer: give up on this client */
    size_t hl = (size_t)(end - c->buf) + 4;
    int close_after = 0;
    for (char *p = c->buf; p + 17 <= end; p++)
      if ((*p == 'C' || *p == 'c') && strncasecmp(p, "connection: close", 17) == 0) { close_after = 1; break; }
    const char *r = close_after ? RESP_CLOSE : RESP_KA;
    size_t rl = close_after ? sizeof RESP_CLOSE - 1 : sizeof RESP_KA - 1;
    if (write(c->fd, r, rl) != (ssize_t)rl) return 0;  /* tiny response: a short write only happens to a dead peer */
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    if (close_after) return 0;
  }
}

static void *loop(void *arg) {
  int lfd = (int)(long)arg, ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *nc = malloc(sizeof *nc);
          nc->fd = fd; nc->len = 0;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        drop(ep, c);
        continue;
      }
      c->len += (size_t)r;
      if (!serve(c)) drop(ep, c);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: httpd IP PORT [THREADS]\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) { fprintf(stderr, "bad ip %s\n", argv[1]); return 2; }
  int threads = argc > 3 ? atoi(argv[3]) : 1;
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  /* Every listener is bound (SO_REUSEPORT group) before readiness is announced. */
  int lfds[64];
  for (int i = 0; i < threads; i++) lfds[i] = listener();
  pthread_t t;
  for (int i = 1; i < threads; i++) pthread_create(&t, NULL, loop, (void *)(long)lfds[i]);
  printf("{\"listening\":{\"address\":\"%s\",\"port\":%s,\"threads\":%d}}\n", argv[1], argv[2], threads);
  fflush(stdout);
  loop((void *)(long)lfds[0]);
  return 0;
}
