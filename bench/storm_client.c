/* A boot storm from one process: every simulated host does what PXE firmware, iPXE and the
 * installer do, from the first DHCP packet to build-done, all hosts in flight at once on one
 * epoll loop (one Python or shell process per host would cost more CPU than the servers).
 *
 *   storm_client MACS_FILE IFACE CLIENT_IP HTTP_ADDR TFTP_PORT RAMP_SECONDS
 *
 * Per host: DHCP DISCOVER (vendor class PXEClient, option 93 BIOS) until both the site's address
 * offer and a ProxyDHCP offer are in; REQUEST of the address until ACKed; when the proxy's offer
 * names no boot file, the PXE REQUEST to the proxy's port 4011 for the boot item its menu
 * offers; the boot file by TFTP (blksize 1468) from the offer's next-server; then over HTTP the
 * iPXE script for its MAC, the kernel and initrd the script names, the answer file named on the
 * kernel line, and build-done with the token of that URL. Retransmission follows firmware:
 * DHCP after 4, 8, 16 s, each +-1 s at random (port 4011: 1, 2, 3 s); TFTP after 1, 2, 4, 8 s
 * without progress; then, after one more timeout, the host is lost.
 *
 * The hosts' DHCP leases are real but not configured: TFTP and HTTP go from CLIENT_IP, the one
 * address of the clients' namespace. Output, one line per host:
 *   ok MAC dhcp tftp script kernel initrd answer done RETRANSMITTED_FOR_ADDRESS_OFFER
 *      RETRANSMITTED_FOR_PXE_OFFER RETRANSMITTED_FOR_ACK RETRANSMITTED_FOR_4011_ACK NAKS
 *      TFTP_RETRANSMITS ASKED_4011
 *   lost MAC KIND PHASE DETAIL...
 * then "wall SECONDS" (first host started to last host finished). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK };
enum { PHASE_DHCP, PHASE_TFTP, PHASE_SCRIPT, PHASE_KERNEL, PHASE_INITRD, PHASE_ANSWER,
       PHASE_DONE, PHASES };
static const char *phase_names[PHASES] = {"dhcp", "tftp", "script", "kernel", "initrd",
                                          "answer", "done"};
enum state { WAITING, OFFERS, LEASE, PXE_ACK, TFTP, HTTP, FINISHED };

#define VENDOR "PXEClient:Arch:00000:UNDI:002001"
#define BLKSIZE 1468
#define DHCP_TRIES 4 /* the first send and 3 retransmissions */
#define TFTP_TRIES 5 /* the first send and 4 retransmissions: lost after 1+2+4+8+16 s */
#define HTTP_IDLE 60.0
#define KEEP_MAX (1 << 20)

struct http {
    int fd;
    char request[1024];
    int request_len, sent;
    char *buf; /* headers, and the body when it is kept */
    size_t len, cap, header_end;
    long content_length, body;
    int status, keep;
};

struct host {
    uint8_t mac[6];
    char name[18];
    uint32_t xid;
    enum state state;
    int phase, tries, naks, tftp_retx;
    /* Retransmissions by the answer that did not come: address offer, PXE offer, address ACK
     * (or NAK), port-4011 ACK. */
    int missed[4];
    double start, phase_start, deadline, wait, t[PHASES];
    /* DHCP */
    uint32_t yiaddr, site_id, proxy_id, tftp_server;
    int have_address, have_proxy, offered_file;
    uint16_t boot_type;
    char bootfile[128];
    /* TFTP */
    int fd;
    struct sockaddr_in peer;
    uint16_t block;
    long bytes, tsize;
    uint8_t last[600];
    int last_len;
    /* HTTP */
    struct http h;
    char kernel[512], initrd[512], answer[512], token[256];
};

static struct host *hosts;
static int nhosts, epfd, dhcp_fd, remaining;
static struct in_addr client_ip;
static struct sockaddr_in http_server;
static int tftp_port;
static struct host **by_fd; /* which host a socket belongs to */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void finish(struct host *h) {
    h->state = FINISHED;
    remaining--;
    if (h->fd >= 0) {
        by_fd[h->fd] = NULL;
        close(h->fd);
        h->fd = -1;
    }
    if (h->h.fd >= 0) {
        by_fd[h->h.fd] = NULL;
        close(h->h.fd);
        h->h.fd = -1;
    }
    free(h->h.buf);
    h->h.buf = NULL;
}

static void lose(struct host *h, const char *kind, const char *fmt, ...) {
    char detail[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char *c = detail; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    printf("lost %s %s %s %s\n", h->name, kind, phase_names[h->phase], detail);
    finish(h);
}

static void phase_done(struct host *h) {
    double t = now();
    h->t[h->phase] = t - h->phase_start;
    h->phase++;
    h->phase_start = t;
}

/* ---- DHCP ---- */

static uint8_t *option(uint8_t *p, int code, const void *value, int len) {
    *p++ = code;
    *p++ = len;
    memcpy(p, value, len);
    return p + len;
}

static void dhcp_send(struct host *h, int type, int to_proxy) {
    uint8_t pkt[548] = {0}, *p;
    pkt[0] = 1; /* BOOTREQUEST */
    pkt[1] = 1;
    pkt[2] = 6;
    uint32_t xid = htonl(h->xid);
    memcpy(pkt + 4, &xid, 4);
    if (!to_proxy)
        pkt[10] = 0x80; /* broadcast flag: the answer cannot be unicast to an address we lack */
    else
        memcpy(pkt + 12, &client_ip, 4); /* ciaddr: the address the host talks from */
    memcpy(pkt + 28, h->mac, 6);
    memcpy(pkt + 236, "\x63\x82\x53\x63", 4);
    p = pkt + 240;
    uint8_t kind = type, arch[2] = {0, 0}, ndi[3] = {1, 2, 1}, uuid[17] = {0};
    uint8_t asked[] = {1, 3, 6, 43, 54, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135};
    uint16_t max_size = htons(1260);
    memcpy(uuid + 1, h->mac, 6);
    memcpy(uuid + 11, h->mac, 6);
    p = option(p, 53, &kind, 1);
    p = option(p, 57, &max_size, 2);
    p = option(p, 93, arch, 2);
    p = option(p, 94, ndi, 3);
    p = option(p, 97, uuid, 17);
    p = option(p, 60, VENDOR, strlen(VENDOR));
    p = option(p, 55, asked, sizeof asked);
    if (type == REQUEST && !to_proxy) {
        p = option(p, 50, &h->yiaddr, 4);
        p = option(p, 54, &h->site_id, 4);
    }
    if (to_proxy) { /* PXE boot item (sub-option 71): the server type the menu offered, layer 0 */
        uint8_t item[8] = {71, 4, h->boot_type >> 8, h->boot_type & 0xff, 0, 0, 255};
        p = option(p, 43, item, 7);
    }
    *p++ = 255;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(to_proxy ? 4011 : 67)};
    to.sin_addr.s_addr = to_proxy ? h->proxy_id : INADDR_BROADCAST;
    int len = p - pkt < 300 ? 300 : p - pkt;
    if (sendto(dhcp_fd, pkt, len, 0, (struct sockaddr *)&to, sizeof to) < 0)
        fprintf(stderr, "dhcp sendto: %s\n", strerror(errno));
}

/* Sends (or, on a timer, resends) what the host's DHCP state waits an answer for, with PXE
 * 2.1's timeouts: 4, 8, 16, 32 s on port 67 and 1, 2, 3, 4 s on port 4011. */
static void dhcp_step(struct host *h, int first, double t) {
    if (first) {
        h->tries = 0;
    } else if (h->state == OFFERS) {
        h->missed[0] += !h->have_address;
        h->missed[1] += !h->have_proxy;
    } else {
        h->missed[h->state == LEASE ? 2 : 3]++;
    }
    if (++h->tries > DHCP_TRIES) {
        if (h->state == OFFERS)
            lose(h, h->have_address ? "no-pxe-offer" : "no-address-offer", "%d DISCOVERs",
                 DHCP_TRIES);
        else if (h->state == LEASE)
            lose(h, "no-address-ack", "%d REQUESTs", DHCP_TRIES);
        else
            lose(h, "no-pxe-ack", "%d REQUESTs to port 4011", DHCP_TRIES);
        return;
    }
    dhcp_send(h, h->state == OFFERS ? DISCOVER : REQUEST, h->state == PXE_ACK);
    /* RFC 2131 4.1: each timeout randomised by -1 to +1 s, so that hosts which lost their
     * answers together do not all retransmit in the same instant again. */
    double jitter = drand48() * 2 - 1;
    h->deadline = t + (h->state == PXE_ACK ? h->tries : (4 << (h->tries - 1)) + jitter);
}

static void tftp_start(struct host *h, double t);

static void dhcp_receive(void) {
    uint8_t pkt[1500];
    for (;;) {
        ssize_t n = recv(dhcp_fd, pkt, sizeof pkt, MSG_DONTWAIT);
        if (n < 0)
            return;
        if (n < 240 || pkt[0] != 2 || memcmp(pkt + 236, "\x63\x82\x53\x63", 4) != 0)
            continue;
        uint32_t xid;
        memcpy(&xid, pkt + 4, 4);
        xid = ntohl(xid);
        unsigned index = xid & 0xffff;
        if ((xid >> 16) != 0x5354 || index >= (unsigned)nhosts)
            continue;
        struct host *h = &hosts[index];
        if (memcmp(pkt + 28, h->mac, 6) != 0)
            continue;
        int type = 0, pxe = 0, menu_type = -1;
        uint32_t server = 0, yiaddr, siaddr;
        char file[256] = "";
        memcpy(&yiaddr, pkt + 16, 4);
        memcpy(&siaddr, pkt + 20, 4);
        if (pkt[108])
            snprintf(file, sizeof file, "%.127s", (char *)pkt + 108);
        for (ssize_t i = 240; i + 1 < n && pkt[i] != 255;) {
            int code = pkt[i], len = pkt[i + 1];
            if (code == 0) {
                i++;
                continue;
            }
            uint8_t *v = pkt + i + 2;
            if (i + 2 + len > n)
                break;
            if (code == 53 && len == 1)
                type = v[0];
            else if (code == 54 && len == 4)
                memcpy(&server, v, 4);
            else if (code == 60)
                pxe = len >= 9 && memcmp(v, "PXEClient", 9) == 0;
            else if (code == 67)
                snprintf(file, sizeof file, "%.*s", len, (char *)v);
            else if (code == 43) /* sub-option 9, the boot menu: its first item's server type */
                for (int j = 0; j + 1 < len && v[j] != 255;) {
                    if (v[j] == 9 && v[j + 1] >= 2 && menu_type < 0)
                        menu_type = v[j + 2] << 8 | v[j + 3];
                    j += v[j] == 0 ? 1 : 2 + v[j + 1];
                }
            i += 2 + len;
        }
        double t = now();
        if (h->state == OFFERS && type == OFFER) {
            if (yiaddr && !h->have_address) {
                h->have_address = 1;
                h->yiaddr = yiaddr;
                h->site_id = server;
            } else if (!yiaddr && pxe && !h->have_proxy) {
                h->have_proxy = 1;
                h->proxy_id = server;
                h->tftp_server = siaddr ? siaddr : server;
                h->boot_type = menu_type < 0 ? 0 : menu_type;
                snprintf(h->bootfile, sizeof h->bootfile, "%s", file);
                h->offered_file = file[0] != 0;
            }
            if (h->have_address && h->have_proxy) {
                h->state = LEASE;
                dhcp_step(h, 1, t);
            }
        } else if (h->state == LEASE && server == h->site_id && (type == ACK || type == NAK)) {
            if (type == NAK) { /* RFC 2131: back to DISCOVER, as firmware does */
                if (++h->naks > DHCP_TRIES) {
                    lose(h, "address-nak", "the site's DHCP refused %d REQUESTs", h->naks);
                    continue;
                }
                h->have_address = h->have_proxy = 0;
                h->state = OFFERS;
                dhcp_step(h, 1, t);
                continue;
            }
            h->state = h->bootfile[0] ? TFTP : PXE_ACK;
            if (h->state == TFTP)
                tftp_start(h, t);
            else
                dhcp_step(h, 1, t);
        } else if (h->state == PXE_ACK && type == ACK && server == h->proxy_id) {
            if (!file[0]) {
                lose(h, "no-boot-file", "the port-4011 answer names no boot file");
                continue;
            }
            snprintf(h->bootfile, sizeof h->bootfile, "%s", file);
            if (siaddr)
                h->tftp_server = siaddr;
            tftp_start(h, t);
        }
    }
}

/* ---- TFTP ---- */

static void tftp_send(struct host *h, const void *pkt, int len, struct sockaddr_in *to) {
    memcpy(h->last, pkt, len);
    h->last_len = len;
    sendto(h->fd, pkt, len, 0, (struct sockaddr *)to, sizeof *to);
}

/* A non-blocking socket sending from the clients' address (the machine may hold others). */
static int client_socket(int type, const char *what) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr = client_ip};
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0)
        die(what);
    return fd;
}

static void watch(int fd, struct host *h, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
    by_fd[fd] = h;
}

static void tftp_start(struct host *h, double t) {
    phase_done(h);
    h->state = TFTP;
    h->fd = client_socket(SOCK_DGRAM, "bind tftp");
    watch(h->fd, h, EPOLLIN, EPOLL_CTL_ADD);
    h->peer = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(tftp_port),
                                   .sin_addr.s_addr = h->tftp_server};
    uint8_t rrq[300];
    int len = snprintf((char *)rrq + 2, sizeof rrq - 2, "%s%coctet%cblksize%c%d%ctsize%c0",
                       h->bootfile, 0, 0, 0, BLKSIZE, 0, 0) + 3;
    rrq[0] = 0;
    rrq[1] = 1;
    h->tsize = -1;
    h->tries = 1;
    h->wait = 1;
    h->deadline = t + h->wait;
    tftp_send(h, rrq, len, &h->peer);
}

static void http_start(struct host *h);

static void tftp_receive(struct host *h) {
    uint8_t pkt[2048];
    struct sockaddr_in from;
    socklen_t fromlen;
    for (;;) {
        fromlen = sizeof from;
        ssize_t n = recvfrom(h->fd, pkt, sizeof pkt, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            return;
        if (n < 4 || from.sin_addr.s_addr != h->tftp_server)
            continue;
        int opcode = pkt[0] << 8 | pkt[1];
        uint16_t block = pkt[2] << 8 | pkt[3];
        if (h->block == 0 && h->bytes == 0 && (opcode == 3 || opcode == 6))
            h->peer = from; /* the server's transfer port */
        else if (from.sin_port != h->peer.sin_port)
            continue;
        if (opcode == 5) {
            lose(h, "tftp-error", "code %d: %.*s", block, (int)(n - 4), (char *)pkt + 4);
            return;
        }
        uint8_t ack[4] = {0, 4, 0, 0};
        if (opcode == 6) { /* OACK: options accepted; acknowledge as block 0 */
            for (ssize_t i = 2; i < n;) {
                char *key = (char *)pkt + i, *value = key + strnlen(key, n - i) + 1;
                if (value >= (char *)pkt + n)
                    break;
                if (strcasecmp(key, "tsize") == 0)
                    h->tsize = atol(value);
                i = value - (char *)pkt + strnlen(value, pkt + n - (uint8_t *)value) + 1;
            }
            tftp_send(h, ack, 4, &h->peer);
        } else if (opcode == 3 && block == (uint16_t)(h->block + 1)) {
            h->block = block;
            h->bytes += n - 4;
            ack[2] = block >> 8;
            ack[3] = block & 0xff;
            tftp_send(h, ack, 4, &h->peer);
            if (n - 4 < BLKSIZE) {
                if (h->tsize >= 0 && h->bytes != h->tsize) {
                    lose(h, "tftp-short", "%ld of %ld bytes", h->bytes, h->tsize);
                    return;
                }
                by_fd[h->fd] = NULL;
                close(h->fd);
                h->fd = -1;
                http_start(h);
                return;
            }
        } else if (opcode == 3 && block == h->block) {
            sendto(h->fd, h->last, h->last_len, 0, (struct sockaddr *)&h->peer, sizeof h->peer);
            continue; /* our ACK was lost: the same again, and no progress */
        } else {
            continue;
        }
        h->tries = 1; /* progress: the timer starts over */
        h->wait = 1;
        h->deadline = now() + h->wait;
    }
}

static void tftp_timer(struct host *h, double t) {
    if (++h->tries > TFTP_TRIES) {
        lose(h, "tftp-timeout", "no answer after block %u (%ld bytes)", h->block, h->bytes);
        return;
    }
    h->tftp_retx++;
    h->wait *= 2;
    h->deadline = t + h->wait;
    sendto(h->fd, h->last, h->last_len, 0, (struct sockaddr *)&h->peer, sizeof h->peer);
}

/* ---- HTTP ---- */

/* "http://A.B.C.D[:port]/path" into an address and the path (with its query). */
static int parse_url(const char *url, struct sockaddr_in *to, const char **path) {
    char host[64];
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    url += 7;
    const char *slash = strchr(url, '/'), *colon = strchr(url, ':');
    if (!slash || slash - url >= (long)sizeof host)
        return -1;
    int port = 80;
    size_t host_len = slash - url;
    if (colon && colon < slash) {
        port = atoi(colon + 1);
        host_len = colon - url;
    }
    snprintf(host, sizeof host, "%.*s", (int)host_len, url);
    *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port)};
    *path = slash;
    return inet_pton(AF_INET, host, &to->sin_addr) == 1 ? 0 : -1;
}

static void http_request(struct host *h, const struct sockaddr_in *to, const char *method,
                         const char *path, const char *extra, const char *body, int keep) {
    struct http *r = &h->h;
    char authority[32];
    snprintf(authority, sizeof authority, "%s:%d", inet_ntoa(to->sin_addr), ntohs(to->sin_port));
    r->request_len = snprintf(r->request, sizeof r->request,
                              "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: iPXE/1.0 storm\r\n"
                              "Connection: close\r\n%s\r\n%s",
                              method, path, authority, extra, body);
    if (r->request_len >= (int)sizeof r->request) {
        lose(h, "request-too-long", "%s %.100s", method, path);
        return;
    }
    r->sent = 0;
    r->len = r->header_end = 0;
    r->content_length = -1;
    r->body = 0;
    r->status = 0;
    r->keep = keep;
    r->fd = client_socket(SOCK_STREAM, "bind http");
    if (connect(r->fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) {
        lose(h, "http-connect", "%s", strerror(errno));
        return;
    }
    watch(r->fd, h, EPOLLOUT, EPOLL_CTL_ADD);
    h->deadline = now() + HTTP_IDLE;
}

static void http_next(struct host *h) {
    const char *path;
    struct sockaddr_in to;
    const char *url = NULL;
    char extra[400] = "", target[600];
    switch (h->phase) {
    case PHASE_SCRIPT:
        snprintf(target, sizeof target, "/boot/ipxe?mac=%s&uuid=&serial=&arch=x86_64", h->name);
        http_request(h, &http_server, "GET", target, "", "", 1);
        return;
    case PHASE_KERNEL:
        url = h->kernel;
        break;
    case PHASE_INITRD:
        url = h->initrd;
        break;
    case PHASE_ANSWER:
        url = h->answer;
        break;
    case PHASE_DONE:
        snprintf(extra, sizeof extra,
                 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: 2\r\n",
                 h->token);
        http_request(h, &http_server, "POST", "/api/v1/installs/done", extra, "{}", 1);
        return;
    }
    if (parse_url(url, &to, &path) < 0) {
        lose(h, "bad-url", "%s", url);
        return;
    }
    http_request(h, &to, "GET", path, "", "", h->phase == PHASE_ANSWER);
}

static void http_start(struct host *h) {
    phase_done(h);
    h->state = HTTP;
    http_next(h);
}

/* The words of the script a real iPXE acts on: kernel URL, initrd URL, the answer file URL
 * on the kernel line, and the install token in that URL's query. */
static int parse_script(struct host *h) {
    char *body = h->h.buf + h->h.header_end;
    char *kernel = strstr(body, "\nkernel "), *initrd = strstr(body, "\ninitrd ");
    if (!kernel || !initrd)
        return -1;
    char *end = strchr(kernel + 1, '\n');
    if (end)
        *end = 0;
    char *answer = strstr(kernel, "answerfile=");
    if (!answer || sscanf(kernel + 8, "%511s", h->kernel) != 1 ||
        sscanf(answer + 11, "%511s", h->answer) != 1)
        return -1;
    if (end)
        *end = '\n';
    if (sscanf(initrd + 8, "%511s", h->initrd) != 1)
        return -1;
    char *token = strstr(h->answer, "token=");
    if (!token)
        return -1;
    snprintf(h->token, sizeof h->token, "%.*s", (int)strcspn(token + 6, "&"), token + 6);
    return 0;
}

static void http_complete(struct host *h) {
    struct http *r = &h->h;
    by_fd[r->fd] = NULL;
    close(r->fd);
    r->fd = -1;
    if (r->status != 200) {
        lose(h, "http-status", "HTTP %d: %.200s", r->status,
             r->keep ? r->buf + r->header_end : "");
        return;
    }
    if (h->phase == PHASE_SCRIPT) {
        r->buf[r->len] = 0;
        if (parse_script(h) < 0) {
            lose(h, "no-install-script", "%.200s", r->buf + r->header_end);
            return;
        }
    }
    phase_done(h);
    if (h->phase == PHASES) {
        printf("ok %s", h->name);
        for (int i = 0; i < PHASES; i++)
            printf(" %.4f", h->t[i]);
        printf(" %d %d %d %d %d %d %d\n", h->missed[0], h->missed[1], h->missed[2], h->missed[3],
               h->naks, h->tftp_retx, !h->offered_file);
        finish(h);
        return;
    }
    http_next(h);
}

static int http_headers(struct http *r) {
    char *end = memmem(r->buf, r->len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    r->header_end = end + 4 - r->buf;
    *end = 0;
    if (sscanf(r->buf, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    for (char *line = strstr(r->buf, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            r->content_length = atol(line + 17);
    memcpy(end, "\r\n\r\n", 4);
    r->body = r->len - r->header_end;
    return 1;
}

static void http_event(struct host *h) {
    struct http *r = &h->h;
    if (r->sent < r->request_len) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error) {
            lose(h, "http-connect", "%s", strerror(error));
            return;
        }
        ssize_t n = send(r->fd, r->request + r->sent, r->request_len - r->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            lose(h, "http-send", "%s", strerror(errno));
            return;
        }
        if (n > 0)
            r->sent += n;
        if (r->sent == r->request_len)
            watch(r->fd, h, EPOLLIN, EPOLL_CTL_MOD);
        h->deadline = now() + HTTP_IDLE;
        return;
    }
    for (;;) {
        char discard[65536], *into = discard;
        size_t room = sizeof discard;
        int keep = !r->header_end || r->keep; /* headers always; the body when it is read */
        if (keep) {
            if (r->cap - r->len < 4096) {
                if (r->cap >= KEEP_MAX) {
                    lose(h, "http-too-big", "more than %d bytes to keep", KEEP_MAX);
                    return;
                }
                r->cap = r->cap ? r->cap * 2 : 16384;
                r->buf = realloc(r->buf, r->cap + 1);
            }
            into = r->buf + r->len;
            room = r->cap - r->len;
        }
        ssize_t n = recv(r->fd, into, room, 0);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            lose(h, "http-recv", "%s", strerror(errno));
            return;
        }
        if (n == 0) {
            lose(h, "http-short", "closed after %ld of %ld body bytes (status %d)", r->body,
                 r->content_length, r->status);
            return;
        }
        if (keep)
            r->len += n;
        if (r->header_end) {
            r->body += n;
        } else {
            int parsed = http_headers(r);
            if (parsed < 0) {
                lose(h, "http-garbled", "%.80s", r->buf);
                return;
            }
            if (parsed && r->content_length < 0) {
                lose(h, "http-no-length", "status %d without Content-Length", r->status);
                return;
            }
        }
        if (r->header_end && r->body >= r->content_length) {
            http_complete(h);
            return;
        }
    }
    h->deadline = now() + HTTP_IDLE;
}

/* ---- the loop ---- */

static void timers(double t) {
    for (int i = 0; i < nhosts; i++) {
        struct host *h = &hosts[i];
        if (h->state == FINISHED)
            continue;
        if (h->state == WAITING) {
            if (t >= h->start) {
                h->phase_start = t;
                h->state = OFFERS;
                dhcp_step(h, 1, t);
            }
            continue;
        }
        if (t < h->deadline)
            continue;
        if (h->state == TFTP)
            tftp_timer(h, t);
        else if (h->state == HTTP)
            lose(h, "http-timeout", "no progress in %.0f s", HTTP_IDLE);
        else
            dhcp_step(h, 0, t);
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MACS_FILE IFACE CLIENT_IP HTTP_ADDR TFTP_PORT RAMP_S\n",
                argv[0]);
        return 2;
    }
    struct rlimit files = {65536, 65536};
    if (setrlimit(RLIMIT_NOFILE, &files) < 0) {
        getrlimit(RLIMIT_NOFILE, &files);
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    getrlimit(RLIMIT_NOFILE, &files);
    by_fd = calloc(files.rlim_cur, sizeof *by_fd);
    FILE *macs = fopen(argv[1], "r");
    if (!macs)
        die(argv[1]);
    char line[64];
    int cap = 0;
    while (fgets(line, sizeof line, macs)) {
        if (nhosts == cap)
            hosts = realloc(hosts, (cap = cap ? cap * 2 : 1024) * sizeof *hosts);
        struct host *h = &hosts[nhosts];
        memset(h, 0, sizeof *h);
        if (sscanf(line, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &h->mac[0], &h->mac[1], &h->mac[2],
                   &h->mac[3], &h->mac[4], &h->mac[5]) != 6)
            continue;
        snprintf(h->name, sizeof h->name, "%02x:%02x:%02x:%02x:%02x:%02x", h->mac[0],
                 h->mac[1], h->mac[2], h->mac[3], h->mac[4], h->mac[5]);
        h->xid = 0x5354u << 16 | nhosts;
        h->fd = h->h.fd = -1;
        nhosts++;
    }
    fclose(macs);
    if (nhosts > 0x10000) {
        fprintf(stderr, "at most 65536 hosts\n");
        return 2;
    }
    if (inet_pton(AF_INET, argv[3], &client_ip) != 1)
        die("CLIENT_IP");
    char http[80];
    snprintf(http, sizeof http, "http://%s/", argv[4]);
    const char *ignored;
    if (parse_url(http, &http_server, &ignored) < 0)
        die("HTTP_ADDR");
    tftp_port = atoi(argv[5]);
    double ramp = atof(argv[6]);

    epfd = epoll_create1(0);
    dhcp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int on = 1, buffer = 16 << 20;
    setsockopt(dhcp_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(dhcp_fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
    setsockopt(dhcp_fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    if (setsockopt(dhcp_fd, SOL_SOCKET, SO_BINDTODEVICE, argv[2], strlen(argv[2])) < 0)
        die("SO_BINDTODEVICE");
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(68)};
    if (bind(dhcp_fd, (struct sockaddr *)&me, sizeof me) < 0)
        die("bind 68");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = dhcp_fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, dhcp_fd, &ev);

    srand48(1); /* the same retransmission times every run */
    double t0 = now();
    for (int i = 0; i < nhosts; i++)
        hosts[i].start = t0 + (nhosts > 1 ? ramp * i / (nhosts - 1) : 0);
    remaining = nhosts;
    double last_tick = 0;
    struct epoll_event events[256];
    while (remaining > 0) {
        int n = epoll_wait(epfd, events, 256, 2);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == dhcp_fd) {
                dhcp_receive();
                continue;
            }
            struct host *h = by_fd[fd];
            if (!h)
                continue;
            if (h->state == TFTP)
                tftp_receive(h);
            else if (h->state == HTTP)
                http_event(h);
        }
        double t = now();
        if (t - last_tick >= 0.002) {
            timers(t);
            last_tick = t;
        }
    }
    printf("wall %.4f\n", now() - t0);
    return 0;
}
