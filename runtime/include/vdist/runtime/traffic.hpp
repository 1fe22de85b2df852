#pragma once
/// \file
/// All-to-all test traffic with per-sender sequence numbers: the check that a cluster loses,
/// duplicates and reorders nothing. One `vdist_traffic` process per node, driven by plain
/// Erlang messages, so a C++ node, an erl shell or a test can run it:
///
/// ```
///   {start, Peers, PerPeer, Size}  send PerPeer messages (0: until stop) of Size payload bytes
///                                  to {vdist_traffic, Peer} for every node in Peers, round robin
///   stop                           stop sending (messages in flight still arrive)
///   {report, ReplyTo}              ReplyTo ! {traffic_report, Node, Sent, Received, Lost,
///                                             Backwards, Streams, PeersDown}
/// ```
///
/// Each message is `{vdist_seq, SenderPid, Stream, Seq, Payload}`; Seq runs 1, 2, 3, ... per
/// (sender, stream). The receiver expects exactly that order: a jump forward counts the skipped
/// messages as `Lost`, a repeat or a step back counts one in `Backwards` (a duplicate or a
/// reordering). Flow control: the receiver acknowledges every `ack_every` messages with
/// `{vdist_ack, ReceiverNode, Stream, Seq}` and a sender keeps at most `window` unacknowledged
/// messages per peer. A stream goes to one incarnation of a peer: the sender monitors the
/// peer's `vdist_traffic`, says `{vdist_hello, SenderPid, Stream}` to it and sends to the pid
/// in its `{vdist_welcome, Node, Stream, Pid}` (by name, messages sent before the 'DOWN' of a
/// lost peer was handled would reach its restarted incarnation mid-stream). When the peer goes
/// down the sender retries later with a new stream starting at 1, so a restarted peer is
/// checked as strictly as the first one. `Streams` is the number of
/// (sender, stream) pairs received from; `PeersDown` counts the 'DOWN's of peers this node saw.

#include <cstddef>

#include "vdist/runtime/node.hpp"

namespace vdist::runtime {

struct traffic_config {
    std::size_t window = 256;    ///< unacknowledged messages per peer
    std::size_t ack_every = 32;  ///< the receiver acknowledges every this many messages
    std::size_t burst = 64;      ///< messages sent per turn before yielding to other processes
    clock::duration retry = std::chrono::milliseconds(200);  ///< after a peer went down
};

/// Spawns the traffic process on `host` and registers it as `vdist_traffic`.
pid start_traffic(node& host, traffic_config config = {});

}  // namespace vdist::runtime
