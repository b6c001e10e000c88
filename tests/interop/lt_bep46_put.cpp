// SPDX-License-Identifier: MIT
/*
 * Put a BEP 46 share head through libtorrent 2.0 (tests/integration/
 * test_content_heads.sh): the mutable item {"ih": <20 bytes>} under the
 * Ed25519 key of SEED with SALT and SEQ, stored by libtorrent's own
 * dht_put_item. python3-libtorrent can only put strings, and a BEP 46
 * value is a dictionary: hence this small C++ program.
 *   lt_bep46_put LISTEN_IP:PORT NODE_IP:PORT[,...] SEED_HEX SALT IH_HEX SEQ
 * Prints "key <hex>", then "stored N" (nodes that acknowledged); exits 0
 * when N > 0.
 */
#include <libtorrent/alert_types.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/entry.hpp>
#include <libtorrent/kademlia/ed25519.hpp>
#include <libtorrent/kademlia/item.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace lt = libtorrent;

static std::string unhex(const std::string &h)
{
	std::string out;
	for (size_t i = 0; i + 1 < h.size(); i += 2)
		out.push_back((char)std::stoi(h.substr(i, 2), nullptr, 16));
	return out;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		std::fprintf(stderr, "usage: %s LISTEN NODES SEED_HEX SALT IH_HEX SEQ\n", argv[0]);
		return 2;
	}
	std::string seed_s = unhex(argv[3]), salt = argv[4], ih = unhex(argv[5]);
	std::int64_t want_seq = std::atoll(argv[6]);
	if (seed_s.size() != 32 || ih.size() != 20) {
		std::fprintf(stderr, "seed must be 32 bytes, ih 20\n");
		return 2;
	}
	std::array<char, 32> seed;
	std::copy(seed_s.begin(), seed_s.end(), seed.begin());
	lt::dht::public_key pk;
	lt::dht::secret_key sk;
	std::tie(pk, sk) = lt::dht::ed25519_create_keypair(seed);
	std::printf("key ");
	for (unsigned char c : pk.bytes)
		std::printf("%02x", c);
	std::printf("\n");

	lt::settings_pack sp;
	sp.set_str(lt::settings_pack::listen_interfaces, argv[1]);
	sp.set_bool(lt::settings_pack::enable_dht, true);
	sp.set_str(lt::settings_pack::dht_bootstrap_nodes, "");
	sp.set_bool(lt::settings_pack::enable_lsd, false);
	sp.set_bool(lt::settings_pack::enable_upnp, false);
	sp.set_bool(lt::settings_pack::enable_natpmp, false);
	sp.set_bool(lt::settings_pack::dht_restrict_routing_ips, false);
	sp.set_bool(lt::settings_pack::dht_restrict_search_ips, false);
	sp.set_bool(lt::settings_pack::dht_prefer_verified_node_ids, false);
	sp.set_int(lt::settings_pack::alert_mask, lt::alert_category::all);
	lt::session ses(sp);

	std::stringstream nodes(argv[2]);
	std::string n;
	while (std::getline(nodes, n, ',')) {
		size_t c = n.rfind(':');
		ses.add_dht_node({n.substr(0, c), std::atoi(n.c_str() + c + 1)});
	}
	auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
	while (std::chrono::steady_clock::now() < end) {
		std::vector<lt::alert *> al;
		ses.wait_for_alert(std::chrono::milliseconds(200));
		ses.pop_alerts(&al);
		// the routing table: dht_stats_alert after post_dht_stats
		ses.post_dht_stats();
		bool ready = false;
		for (auto *a : al)
			if (auto *s = lt::alert_cast<lt::dht_stats_alert>(a)) {
				int nn = 0;
				for (auto const &b : s->routing_table)
					nn += b.num_nodes;
				ready = nn >= 2;
			}
		if (ready)
			break;
	}
	std::array<char, 32> key;
	std::copy(pk.bytes.begin(), pk.bytes.end(), key.begin());
	ses.dht_put_item(
	    key,
	    [&](lt::entry &e, std::array<char, 64> &sig, std::int64_t &seq, std::string const &s) {
		    e = lt::entry(lt::entry::dictionary_t);
		    e["ih"] = ih;
		    seq = want_seq;
		    std::vector<char> buf;
		    lt::bencode(std::back_inserter(buf), e);
		    lt::dht::signature sign = lt::dht::sign_mutable_item(
			buf, s, lt::dht::sequence_number(seq), pk, sk);
		    sig = sign.bytes;
	    },
	    salt);
	end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
	while (std::chrono::steady_clock::now() < end) {
		std::vector<lt::alert *> al;
		ses.wait_for_alert(std::chrono::milliseconds(200));
		ses.pop_alerts(&al);
		for (auto *a : al)
			if (auto *p = lt::alert_cast<lt::dht_put_alert>(a)) {
				std::printf("stored %d seq %lld\n", p->num_success, (long long)p->seq);
				return p->num_success > 0 ? 0 : 1;
			}
	}
	std::printf("stored 0 (timeout)\n");
	return 1;
}
