#pragma once
/// \file
/// A client of EPMD, the Erlang Port Mapper Daemon (`erl_dist_protocol.xml` §13.1,
/// `lib/kernel/src/erl_epmd.erl`, `erts/epmd/src/epmd_srv.c`): registering a node, asking
/// for the port of another one, listing names, and starting a local EPMD the way `erl` does.
///
/// ```
///  every request:   Len:16 | Request            (one request per TCP connection)
///
///  ALIVE2_REQ       120 'x' | PortNo:16 | NodeType:8 | Protocol:8 | HighestVersion:16
///                   | LowestVersion:16 | Nlen:16 | NodeName | Elen:16 | Extra
///  ALIVE2_X_RESP    118 'v' | Result:8 | Creation:32     (EPMD of OTP 23+, node version >= 6)
///  ALIVE2_RESP      121 'y' | Result:8 | Creation:16     (older EPMD)
///                   the connection stays open: closing it unregisters the node
///
///  PORT_PLEASE2_REQ 122 'z' | NodeName
///  PORT2_RESP       119 'w' | 0 | PortNo:16 | NodeType:8 | Protocol:8 | HighestVersion:16
///                   | LowestVersion:16 | Nlen:16 | NodeName | Elen:16 | Extra
///                   119 'w' | Result > 0                  (no such name)
///
///  NAMES_REQ        110 'n'
///  NAMES_RESP       EPMDPortNo:32 | "name <alive> at port <port>\n"*      (then EPMD closes)
/// ```
///
/// The codecs are sans-IO: they take the bytes received so far and never read past them. A
/// reply from the network is untrusted: a wrong tag, trailing bytes, or a length past the end
/// of what EPMD sent before closing is malformed_reply. The functions that talk to EPMD bound
/// every connect, read and write by their timeout (non-blocking sockets and poll); only the
/// name lookup of a host (getaddrinfo) is not bounded by it, as getaddrinfo has no timeout.
/// Every function may be called from any thread (each request uses its own connection); an
/// epmd_registration belongs to one owner at a time.
///
/// Versions: OTP 25.2.3 registers HighestVersion 6, LowestVersion 5. vdist speaks only the
/// version-6 handshake (DFLAG_HANDSHAKE_23), so it registers 6 and 6 (epmd_dist_version).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace vdist::dist {

/// Why an EPMD request failed.
enum class epmd_errc {
    unreachable = 1,   ///< no EPMD listens there (connection refused, host unknown, reset)
    timed_out,         ///< no connection or no complete reply within the timeout
    malformed_reply,   ///< a reply of the wrong tag, with a length past its end, trailing bytes
                       ///< or cut short by EPMD closing the connection
    duplicate_name,    ///< ALIVE2 refused (Result != 0): the name is taken (as OTP reports it)
    not_found,         ///< PORT2_RESP with Result > 0: no node of that name is registered
    start_failed,      ///< ensure_epmd found no epmd program, or it did not answer in time
    invalid_argument,  ///< a name EPMD would refuse (empty, '@', NUL, not UTF-8, > 255
                       ///< characters), extra data over 1020 bytes, or listen port 0
};

/// The category of epmd_errc ("vdist.epmd").
[[nodiscard]] const std::error_category& epmd_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(epmd_errc e) noexcept {
    return {static_cast<int>(e), epmd_category()};
}

/// A value or the error_code of a failure (epmd_errc, or errno for a system call).
template <class T>
using epmd_result = std::expected<T, std::error_code>;

/// EPMD's well-known TCP port.
inline constexpr std::uint16_t default_epmd_port = 4369;

// -- wire constants (erl_dist_protocol.xml §13.1, erts/epmd/src/epmd.h)
// ----------------------------

inline constexpr std::uint8_t EPMD_ALIVE2_REQ = 120;        ///< 'x'
inline constexpr std::uint8_t EPMD_ALIVE2_X_RESP = 118;     ///< 'v', 32-bit creation (OTP 23+)
inline constexpr std::uint8_t EPMD_ALIVE2_RESP = 121;       ///< 'y', 16-bit creation
inline constexpr std::uint8_t EPMD_PORT_PLEASE2_REQ = 122;  ///< 'z'
inline constexpr std::uint8_t EPMD_PORT2_RESP = 119;        ///< 'w'
inline constexpr std::uint8_t EPMD_NAMES_REQ = 110;         ///< 'n'
inline constexpr std::uint8_t EPMD_NODE_TYPE_NORMAL = 77;   ///< 'M', a visible node
inline constexpr std::uint8_t EPMD_NODE_TYPE_HIDDEN = 72;   ///< 'H'
inline constexpr std::uint8_t EPMD_PROTOCOL_TCP_IPV4 = 0;

/// The distribution version vdist registers as both highest and lowest: it speaks only the
/// version-6 handshake (OTP 25.2.3 registers 6 and 5).
inline constexpr std::uint16_t epmd_dist_version = 6;
/// Longest Extra EPMD stores (MAXSYMLEN in epmd_int.h: 255 characters of up to 4 bytes).
inline constexpr std::size_t epmd_max_extra_bytes = 255 * 4;
/// Longest NAMES reply epmd_names() reads before giving up with malformed_reply.
inline constexpr std::size_t epmd_max_names_reply_bytes = 4 * 1024 * 1024;

/// ERL_EPMD_PORT from the environment (as erl reads it: a decimal port 1..65535), else 4369.
/// Reads the environment (getenv): not safe against a concurrent setenv.
[[nodiscard]] std::uint16_t epmd_port_from_environment();

/// Whether EPMD accepts `alive` as a node name (the part before '@'): non-empty, well-formed
/// UTF-8 of at most 255 characters, no NUL and no '@'.
[[nodiscard]] bool is_valid_epmd_alive(std::string_view alive) noexcept;

/// What EPMD knows of one node (the fields of ALIVE2_REQ and PORT2_RESP).
struct epmd_node_info {
    std::string name{};      ///< the alive part of the node name (before '@')
    std::uint16_t port = 0;  ///< where the node listens for distribution connections
    bool hidden = false;     ///< NodeType 72 'H' (anything else reads as normal, like OTP)
    std::uint8_t protocol = EPMD_PROTOCOL_TCP_IPV4;
    std::uint16_t highest_version = epmd_dist_version;
    std::uint16_t lowest_version = epmd_dist_version;
    std::string extra{};  ///< opaque bytes EPMD hands back in PORT2_RESP

    friend bool operator==(const epmd_node_info&, const epmd_node_info&) = default;
};

// -- sans-IO codecs
// --------------------------------------------------------------------------------

/// ALIVE2_REQ with its 2-byte length. Empty if the request cannot be framed (name and extra
/// longer than a 16-bit length allows); register_node() validates more strictly first.
[[nodiscard]] std::vector<std::byte> encode_alive2_request(const epmd_node_info& node);
/// PORT_PLEASE2_REQ for `alive` with its 2-byte length; empty if `alive` cannot be framed.
[[nodiscard]] std::vector<std::byte> encode_port_please2_request(std::string_view alive);
/// NAMES_REQ with its 2-byte length: `00 01 6e`.
[[nodiscard]] std::vector<std::byte> encode_names_request();

/// The reply to ALIVE2_REQ, from the bytes received so far: ALIVE2_X_RESP (118, 32-bit
/// creation) or ALIVE2_RESP (121, 16-bit creation). nullopt: need more bytes. Result != 0 is
/// duplicate_name (known from the second byte on); another tag, or bytes after the reply,
/// malformed_reply.
[[nodiscard]] epmd_result<std::optional<std::uint32_t>> decode_alive2_response(
    std::span<const std::byte> bytes);

/// PORT2_RESP, from the bytes received so far: complete only when the whole reply is there
/// (nullopt: need more; at end of stream the caller reads nullopt as malformed_reply).
/// Result > 0 is not_found; another tag, an empty name, or bytes after the reply,
/// malformed_reply.
[[nodiscard]] epmd_result<std::optional<epmd_node_info>> decode_port2_response(
    std::span<const std::byte> bytes);

/// The NAMES reply, parsed once EPMD closed the connection (`all` is everything it sent):
/// EPMDPortNo:32 then lines "name <alive> at port <port>\n", each ending in a newline; the
/// alive part is what lies between "name " and the last " at port ". Names in EPMD's order.
[[nodiscard]] epmd_result<std::vector<std::pair<std::string, std::uint16_t>>> decode_names_response(
    std::span<const std::byte> all);

// -- talking to EPMD
// -------------------------------------------------------------------------------

/// A node's registration in EPMD: holds the ALIVE2 connection open (closing it unregisters
/// the name), with the creation EPMD assigned. Move-only; the destructor closes.
class epmd_registration {
  public:
    /// Registers `alive` (listening on `listen_port`; NodeType 72 if `hidden`, else 77;
    /// versions 6..6) with the EPMD at `epmd_host`:`epmd_port`. Connect, send and reply are
    /// bounded by `timeout` together. Fails with duplicate_name if the name is taken,
    /// invalid_argument for a name EPMD would refuse or listen_port 0.
    [[nodiscard]] static epmd_result<epmd_registration> register_node(
        std::string_view alive, std::uint16_t listen_port, bool hidden,
        std::chrono::milliseconds timeout, std::uint16_t epmd_port = epmd_port_from_environment(),
        std::string_view epmd_host = "127.0.0.1");

    /// register_node in two halves, for a caller with an event loop: begin() connects and
    /// sends ALIVE2 (bounded by `timeout`) without waiting for the answer; finish() reads it
    /// (waiting at most `timeout`) once native_handle() is readable, and sets creation().
    [[nodiscard]] static epmd_result<epmd_registration> begin(
        std::string_view alive, std::uint16_t listen_port, bool hidden,
        std::chrono::milliseconds timeout, std::uint16_t epmd_port = epmd_port_from_environment(),
        std::string_view epmd_host = "127.0.0.1");
    [[nodiscard]] epmd_result<void> finish(std::chrono::milliseconds timeout);
    /// EPMD answered (finish() succeeded): the name is registered.
    [[nodiscard]] bool answered() const noexcept { return answered_; }

    epmd_registration(epmd_registration&& other) noexcept;
    epmd_registration& operator=(epmd_registration&& other) noexcept;
    epmd_registration(const epmd_registration&) = delete;
    epmd_registration& operator=(const epmd_registration&) = delete;
    ~epmd_registration();

    /// The creation EPMD assigned (32 bits from ALIVE2_X_RESP; 1..3 from an old EPMD's
    /// ALIVE2_RESP).
    [[nodiscard]] std::uint32_t creation() const noexcept { return creation_; }
    /// The connection's socket (non-blocking, close-on-exec), for poll(): readable means EPMD
    /// went away (end of stream) and the name is no longer registered. Do not read or write
    /// it otherwise: EPMD unregisters a node that sends anything more.
    [[nodiscard]] int native_handle() const noexcept { return socket_; }

  private:
    epmd_registration(int socket, std::uint32_t creation) noexcept
        : socket_(socket), creation_(creation), answered_(creation != 0) {}

    int socket_ = -1;
    std::uint32_t creation_ = 0;
    bool answered_ = false;
};

/// PORT_PLEASE2 to the EPMD on `host`: where the node `alive` listens, and the versions it
/// speaks. not_found if EPMD has no such name; malformed_reply if EPMD answers for another
/// name. The whole exchange is bounded by `timeout`.
[[nodiscard]] epmd_result<epmd_node_info> epmd_port_please(
    std::string_view host, std::string_view alive, std::chrono::milliseconds timeout,
    std::uint16_t epmd_port = epmd_port_from_environment());

/// NAMES to the EPMD on `host`: every registered name with its port. The EPMDPortNo in the
/// reply is not compared with `epmd_port` (it differs behind a port forward).
[[nodiscard]] epmd_result<std::vector<std::pair<std::string, std::uint16_t>>> epmd_names(
    std::string_view host, std::chrono::milliseconds timeout,
    std::uint16_t epmd_port = epmd_port_from_environment());

/// Like erl: when no EPMD answers NAMES on 127.0.0.1:`epmd_port`, runs `epmd -daemon`
/// (with `-port P` unless P is 4369 and ERL_EPMD_PORT is unset, as epmd itself reads
/// ERL_EPMD_PORT; its stdin, stdout and stderr on /dev/null) and waits until it answers.
/// The program is searched on PATH, then in $BINDIR and the Erlang install directories
/// (/usr/lib/erlang/bin, /usr/lib/erlang/erts-*/bin, the same under /usr/local/lib/erlang).
/// Fails with start_failed when no epmd program is found or none answers within `timeout`;
/// with the probe's error if something answers but is no EPMD (malformed_reply) or does not
/// answer (timed_out). The daemon outlives the caller, as erl's does.
[[nodiscard]] epmd_result<void> ensure_epmd(std::uint16_t epmd_port,
                                            std::chrono::milliseconds timeout);

}  // namespace vdist::dist

template <>
struct std::is_error_code_enum<vdist::dist::epmd_errc> : std::true_type {};
