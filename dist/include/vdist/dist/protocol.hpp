#pragma once
/// \file
/// The numbers of Erlang distribution: capability flags, control-message opcodes and the
/// distribution-header tags, under OTP's own names (`lib/kernel/include/dist.hrl`,
/// `erts/emulator/beam/dist.h`, `erl_dist_protocol.xml`). Values checked against OTP 25.2.3.
///
/// ```
///  after the handshake, every packet:   Len:32 | payload        (Len 0: a tick)
///  pass-through payload:                112 | 131 Control | [131 Message]
///  distribution header payload:         131 68 NumAtomCacheRefs [Flags Refs] Control [Message]
///  first fragment:                      131 69 SeqId:64 FragId:64 NumAtomCacheRefs [..] Control
///  [part] later fragments:                     131 70 SeqId:64 FragId:64 part      (FragId counts
///  down to 1)
/// ```

#include <cstddef>
#include <cstdint>

namespace vdist::dist {

// -- capability flags (64 bits since the version-6 handshake, OTP 23) -----------------------------

inline constexpr std::uint64_t DFLAG_PUBLISHED = 0x1;   ///< absent: a hidden node
inline constexpr std::uint64_t DFLAG_ATOM_CACHE = 0x2;  ///< obsolete
inline constexpr std::uint64_t DFLAG_EXTENDED_REFERENCES = 0x4;
inline constexpr std::uint64_t DFLAG_DIST_MONITOR = 0x8;
inline constexpr std::uint64_t DFLAG_FUN_TAGS = 0x10;
inline constexpr std::uint64_t DFLAG_DIST_MONITOR_NAME = 0x20;
inline constexpr std::uint64_t DFLAG_HIDDEN_ATOM_CACHE = 0x40;  ///< obsolete
inline constexpr std::uint64_t DFLAG_NEW_FUN_TAGS = 0x80;
inline constexpr std::uint64_t DFLAG_EXTENDED_PIDS_PORTS = 0x100;
inline constexpr std::uint64_t DFLAG_EXPORT_PTR_TAG = 0x200;
inline constexpr std::uint64_t DFLAG_BIT_BINARIES = 0x400;
inline constexpr std::uint64_t DFLAG_NEW_FLOATS = 0x800;
inline constexpr std::uint64_t DFLAG_UNICODE_IO = 0x1000;
inline constexpr std::uint64_t DFLAG_DIST_HDR_ATOM_CACHE = 0x2000;
inline constexpr std::uint64_t DFLAG_SMALL_ATOM_TAGS = 0x4000;
inline constexpr std::uint64_t DFLAG_UTF8_ATOMS = 0x10000;
inline constexpr std::uint64_t DFLAG_MAP_TAG = 0x20000;
inline constexpr std::uint64_t DFLAG_BIG_CREATION = 0x40000;
inline constexpr std::uint64_t DFLAG_SEND_SENDER = 0x80000;
inline constexpr std::uint64_t DFLAG_BIG_SEQTRACE_LABELS = 0x100000;
inline constexpr std::uint64_t DFLAG_EXIT_PAYLOAD = 0x400000;
inline constexpr std::uint64_t DFLAG_FRAGMENTS = 0x800000;
inline constexpr std::uint64_t DFLAG_HANDSHAKE_23 = 0x1000000;  ///< since OTP 23
inline constexpr std::uint64_t DFLAG_UNLINK_ID = 0x2000000;     ///< mandatory since OTP 26
/// Shorthand for the eleven OTP 25 mandatory flags (the OTP 25 docs misprint it as 1 bsl 36).
inline constexpr std::uint64_t DFLAG_MANDATORY_25_DIGEST = 0x4000000;
inline constexpr std::uint64_t DFLAG_SPAWN = std::uint64_t{1} << 32;    ///< since OTP 23
inline constexpr std::uint64_t DFLAG_NAME_ME = std::uint64_t{1} << 33;  ///< since OTP 23
inline constexpr std::uint64_t DFLAG_V4_NC = std::uint64_t{1} << 34;    ///< mandatory since OTP 26
inline constexpr std::uint64_t DFLAG_ALIAS = std::uint64_t{1} << 35;    ///< since OTP 24

/// The flags OTP 25 requires of every peer (`MANDATORY_DFLAGS_25`); DFLAG_MANDATORY_25_DIGEST
/// stands for all of them.
inline constexpr std::uint64_t mandatory_flags_25 =
    DFLAG_EXTENDED_REFERENCES | DFLAG_FUN_TAGS | DFLAG_EXTENDED_PIDS_PORTS | DFLAG_NEW_FUN_TAGS |
    DFLAG_EXPORT_PTR_TAG | DFLAG_BIT_BINARIES | DFLAG_NEW_FLOATS | DFLAG_UTF8_ATOMS |
    DFLAG_MAP_TAG | DFLAG_BIG_CREATION | DFLAG_HANDSHAKE_23;
/// What OTP 26 adds to them.
inline constexpr std::uint64_t mandatory_flags_26 =
    mandatory_flags_25 | DFLAG_V4_NC | DFLAG_UNLINK_ID;

/// `flags` with DFLAG_MANDATORY_25_DIGEST expanded into the flags it stands for
/// (`dist_util:expand_mandatory_25_flag/1`).
[[nodiscard]] constexpr std::uint64_t expand_mandatory_flags(std::uint64_t flags) noexcept {
    return (flags & DFLAG_MANDATORY_25_DIGEST) != 0 ? flags | mandatory_flags_25 : flags;
}

/// Everything vdist implements, and so advertises (a visible node adds DFLAG_PUBLISHED).
/// Each flag here is backed by code: the distribution header with the atom cache and fragments
/// is received (vdist sends unfragmented messages with a header of no cache references), links
/// use the UNLINK_ID protocol, monitors by pid and by name, EXIT_PAYLOAD, SPAWN, ALIAS.
inline constexpr std::uint64_t vdist_flags =
    mandatory_flags_26 | DFLAG_MANDATORY_25_DIGEST | DFLAG_DIST_MONITOR | DFLAG_DIST_MONITOR_NAME |
    DFLAG_UNICODE_IO | DFLAG_DIST_HDR_ATOM_CACHE | DFLAG_SMALL_ATOM_TAGS | DFLAG_SEND_SENDER |
    DFLAG_BIG_SEQTRACE_LABELS | DFLAG_EXIT_PAYLOAD | DFLAG_FRAGMENTS | DFLAG_SPAWN | DFLAG_ALIAS;

/// Whether packets after the handshake carry the distribution header (131 68/69/70) rather
/// than pass-through framing (112): so if either side's header flags were negotiated.
[[nodiscard]] constexpr bool uses_dist_header(std::uint64_t negotiated) noexcept {
    return (negotiated & (DFLAG_DIST_HDR_ATOM_CACHE | DFLAG_FRAGMENTS)) != 0;
}

// -- control messages (`enum dop` in dist.h)
// -------------------------------------------------------

/// The first element of a control tuple.
enum class dop : std::uint8_t {
    LINK = 1,
    SEND = 2,
    EXIT = 3,
    UNLINK = 4,  ///< the old unlink, replaced by UNLINK_ID (gone in OTP 26)
    NODE_LINK = 5,
    REG_SEND = 6,
    GROUP_LEADER = 7,
    EXIT2 = 8,
    SEND_TT = 12,
    EXIT_TT = 13,
    REG_SEND_TT = 16,
    EXIT2_TT = 18,
    MONITOR_P = 19,
    DEMONITOR_P = 20,
    MONITOR_P_EXIT = 21,
    SEND_SENDER = 22,
    SEND_SENDER_TT = 23,
    PAYLOAD_EXIT = 24,
    PAYLOAD_EXIT_TT = 25,
    PAYLOAD_EXIT2 = 26,
    PAYLOAD_EXIT2_TT = 27,
    PAYLOAD_MONITOR_P_EXIT = 28,
    SPAWN_REQUEST = 29,
    SPAWN_REQUEST_TT = 30,
    SPAWN_REPLY = 31,
    SPAWN_REPLY_TT = 32,
    ALIAS_SEND = 33,
    ALIAS_SEND_TT = 34,
    UNLINK_ID = 35,
    UNLINK_ID_ACK = 36,
};

/// SPAWN_REPLY flags.
inline constexpr std::uint64_t ERTS_DIST_SPAWN_FLAG_LINK = 1;
inline constexpr std::uint64_t ERTS_DIST_SPAWN_FLAG_MONITOR = 2;

// -- packets after the handshake ----------------------------------------------------------------

inline constexpr std::uint8_t PASS_THROUGH = 112;     ///< 'p'
inline constexpr std::uint8_t DIST_HEADER = 68;       ///< 'D', after 131
inline constexpr std::uint8_t DIST_FRAG_HEADER = 69;  ///< 'E', first fragment
inline constexpr std::uint8_t DIST_FRAG_CONT = 70;    ///< 'F', later fragments
/// Atom cache: segments x entries per connection and direction.
inline constexpr std::size_t atom_cache_size = 2048;
/// Most atom cache references one header may carry.
inline constexpr std::size_t max_atom_cache_refs = 255;

// -- handshake (version 6) -----------------------------------------------------------------------

inline constexpr std::uint8_t HS_SEND_NAME = 'N';      ///< also the challenge (B -> A)
inline constexpr std::uint8_t HS_OLD_SEND_NAME = 'n';  ///< version 5, refused by OTP 25.0-25.2
inline constexpr std::uint8_t HS_STATUS = 's';
inline constexpr std::uint8_t HS_CHALLENGE_REPLY = 'r';
inline constexpr std::uint8_t HS_CHALLENGE_ACK = 'a';
inline constexpr std::uint8_t HS_COMPLEMENT = 'c';

}  // namespace vdist::dist
