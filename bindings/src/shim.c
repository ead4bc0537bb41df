/* See shim.h. Compiled by bindings/build.rs with the full `pkg-config --cflags libdpdk`. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_memory.h>

#include "shim.h"

uint16_t nmadp_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			    uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t nmadp_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			    uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *nmadp_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int nmadp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void nmadp_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

/* rte_pktmbuf_free_bulk is an exported (non-inline) function in 22.11; forwarded here too so
 * Rust calls one set of names. */
void nmadp_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

char *nmadp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *nmadp_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *nmadp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int nmadp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

int nmadp_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	return rte_pktmbuf_chain(head, tail);
}

void *nmadp_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t nmadp_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t nmadp_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t nmadp_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t nmadp_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t nmadp_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

struct rte_mempool *nmadp_pktmbuf_pool(const struct rte_mbuf *m)
{
	return m->pool;
}

uint16_t nmadp_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

int nmadp_errno(void)
{
	return rte_errno;
}

unsigned int nmadp_lcore_id(void)
{
	return rte_lcore_id();
}

uint32_t nmadp_lcore_id_any(void)
{
	return LCORE_ID_ANY;
}

uint64_t nmadp_rss_hf_ip_tcp_udp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint16_t nmadp_pktmbuf_headroom_default(void)
{
	return RTE_PKTMBUF_HEADROOM;
}

uint16_t nmadp_mbuf_default_buf_size(void)
{
	return RTE_MBUF_DEFAULT_BUF_SIZE;
}

int nmadp_socket_id_any(void)
{
	return SOCKET_ID_ANY;
}

int nmadp_rx_stamp_register(void)
{
	static const struct rte_mbuf_dynfield desc = {
		.name = "nmadp_dynfield_rx_stamp",
		.size = sizeof(uint64_t),
		.align = __alignof__(uint64_t),
	};
	return rte_mbuf_dynfield_register(&desc);
}
