#pragma once
/// \file
/// The Erlang part of `vdist demo`: a real OTP node and two C++ nodes (`vdist node`) meet over
/// TCP distribution, on a private EPMD.
///
/// ```
///   vdist demo ─starts─> epmd -port P -relaxed_command_check    (ERL_EPMD_PORT=P for all)
///     │        ─starts─> erl -name demo@127.0.0.1 running demo_erlang.escript
///     │                    │ "@ready"
///     │        ─starts─> vdist node cpp1@127.0.0.1
///     │        ─starts─> vdist node cpp2@127.0.0.1 --ping demo@127.0.0.1   (C++ -> erl)
///     │                    │ pings both, echo calls, 10,000 messages to each, rpc, erpc
///     │                    │ "@stop cpp1@127.0.0.1"
///     │        ─SIGTERM> cpp1          erl sees 'DOWN' (noconnection) and nodedown
///     │                    │ "result: N checks, all passed", exit 0
///     └────────SIGTERM> cpp2, epmd
/// ```
///
/// Every line a child prints is shown as it arrives, prefixed with who printed it (`erl>`,
/// `cpp1>`, `cpp2>`, `epmd>`); the driver's own steps are `demo>` lines.

namespace vdist::cli {

/// Runs the Erlang part. 0 when every check passed, or when `erl` or `epmd` is not installed
/// (the part is skipped and the reason printed); 1 otherwise. Takes at most about 40 s (the
/// escript stops itself after 20 s, the driver gives up after 30 s, then stops its children).
/// Every child is reaped before it returns; children also get SIGKILL if the demo dies first.
/// Single-threaded callers only (it forks).
[[nodiscard]] int run_erlang_demo();

}  // namespace vdist::cli
