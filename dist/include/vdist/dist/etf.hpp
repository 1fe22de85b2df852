#pragma once
/// \file
/// The External Term Format on the wire (erts/doc/src/erl_ext_dist.xml), owned by this header:
/// tag values under OTP's own names, and the layout of every term vdist reads or writes.
/// Integers on the wire are big-endian unless noted.
///
/// ```
///  external term     131 Term                         (VERSION_MAGIC, then one term)
///  compressed        131 80 UncompressedSize:4 ZlibData
///
///  SMALL_INTEGER_EXT 97  Int:1                        0..255
///  INTEGER_EXT       98  Int:4                        signed 32-bit
///  SMALL_BIG_EXT     110 N:1 Sign:1 Digits:N          little-endian magnitude, Sign 1 = negative
///  LARGE_BIG_EXT     111 N:4 Sign:1 Digits:N
///  NEW_FLOAT_EXT     70  IEEE-754 double:8
///  FLOAT_EXT         99  31 bytes of "%.20e" text     (decode only; before OTP R11)
///  ATOM_UTF8_EXT     118 Len:2 UTF-8:Len              Len in bytes, at most 255 characters
///  SMALL_ATOM_UTF8_EXT 119 Len:1 UTF-8:Len
///  ATOM_EXT          100 Len:2 Latin-1:Len            (decode only)
///  SMALL_ATOM_EXT    115 Len:1 Latin-1:Len            (decode only)
///  ATOM_CACHE_REF    82  Index:1                      (only inside a distribution message)
///  SMALL_TUPLE_EXT   104 Arity:1 Elements
///  LARGE_TUPLE_EXT   105 Arity:4 Elements
///  NIL_EXT           106                              []
///  STRING_EXT        107 Len:2 Bytes:Len              a list of Len integers 0..255
///  LIST_EXT          108 Len:4 Elements Tail          Tail is NIL_EXT for a proper list
///  BINARY_EXT        109 Len:4 Bytes:Len
///  BIT_BINARY_EXT    77  Len:4 Bits:1 Bytes:Len       Bits (1..8) of the last byte are used
///  MAP_EXT           116 Arity:4 (Key Value)*Arity
///  NEW_PID_EXT       88  Node ID:4 Serial:4 Creation:4
///  PID_EXT           103 Node ID:4 Serial:4 Creation:1 (decode only)
///  V4_PORT_EXT       120 Node ID:8 Creation:4         (since OTP 24; needs DFLAG_V4_NC)
///  NEW_PORT_EXT      89  Node ID:4 Creation:4
///  PORT_EXT          102 Node ID:4 Creation:1         (decode only)
///  NEWER_REFERENCE_EXT 90 Len:2 Node Creation:4 ID:4*Len   0 <= Len <= 5 (5: OTP 24, V4_NC)
///  NEW_REFERENCE_EXT 114 Len:2 Node Creation:1 ID:4*Len    (decode only)
///  REFERENCE_EXT     101 Node ID:4 Creation:1         (decode only)
///  EXPORT_EXT        113 Module Function Arity        atoms, then SMALL_INTEGER_EXT
///  NEW_FUN_EXT       112 Size:4 Arity:1 Uniq:16 Index:4 NumFree:4 Module OldIndex OldUniq Pid
///                        FreeVars*NumFree             Size counts itself and what follows
///  LOCAL_EXT         121 ...                          (OTP 26 local-only encoding; refused)
/// ```
///
/// Node fields of pids, ports and references are atoms in any atom encoding.

#include <cstdint>

namespace vdist::dist::etf {

inline constexpr std::uint8_t VERSION_MAGIC = 131;
inline constexpr std::uint8_t COMPRESSED = 80;

inline constexpr std::uint8_t NEW_FLOAT_EXT = 70;
inline constexpr std::uint8_t BIT_BINARY_EXT = 77;
inline constexpr std::uint8_t ATOM_CACHE_REF = 82;
inline constexpr std::uint8_t NEW_PID_EXT = 88;
inline constexpr std::uint8_t NEW_PORT_EXT = 89;
inline constexpr std::uint8_t NEWER_REFERENCE_EXT = 90;
inline constexpr std::uint8_t SMALL_INTEGER_EXT = 97;
inline constexpr std::uint8_t INTEGER_EXT = 98;
inline constexpr std::uint8_t FLOAT_EXT = 99;
inline constexpr std::uint8_t ATOM_EXT = 100;
inline constexpr std::uint8_t REFERENCE_EXT = 101;
inline constexpr std::uint8_t PORT_EXT = 102;
inline constexpr std::uint8_t PID_EXT = 103;
inline constexpr std::uint8_t SMALL_TUPLE_EXT = 104;
inline constexpr std::uint8_t LARGE_TUPLE_EXT = 105;
inline constexpr std::uint8_t NIL_EXT = 106;
inline constexpr std::uint8_t STRING_EXT = 107;
inline constexpr std::uint8_t LIST_EXT = 108;
inline constexpr std::uint8_t BINARY_EXT = 109;
inline constexpr std::uint8_t SMALL_BIG_EXT = 110;
inline constexpr std::uint8_t LARGE_BIG_EXT = 111;
inline constexpr std::uint8_t NEW_FUN_EXT = 112;
inline constexpr std::uint8_t EXPORT_EXT = 113;
inline constexpr std::uint8_t NEW_REFERENCE_EXT = 114;
inline constexpr std::uint8_t SMALL_ATOM_EXT = 115;
inline constexpr std::uint8_t MAP_EXT = 116;
inline constexpr std::uint8_t ATOM_UTF8_EXT = 118;
inline constexpr std::uint8_t SMALL_ATOM_UTF8_EXT = 119;
inline constexpr std::uint8_t V4_PORT_EXT = 120;
inline constexpr std::uint8_t LOCAL_EXT = 121;

/// Length of FLOAT_EXT's text field.
inline constexpr std::size_t float_ext_text_length = 31;
/// Most characters in an atom (not bytes: an UTF-8 atom may take up to 4 * 255 bytes).
inline constexpr std::size_t max_atom_characters = 255;
/// Largest creation of the old one-byte-creation tags (PID_EXT, PORT_EXT, REFERENCE_EXT,
/// NEW_REFERENCE_EXT): two bits.
inline constexpr std::uint32_t max_old_creation = 3;
/// Largest port id OTP writes as NEW_PORT_EXT (ERTS_MAX_V3_PORT_NUMBER, 28 bits); larger ids
/// go out as V4_PORT_EXT.
inline constexpr std::uint64_t max_new_port_id = (std::uint64_t{1} << 28) - 1;
/// Most 32-bit words in a reference's id (NEWER_REFERENCE_EXT with DFLAG_V4_NC, OTP 24+).
inline constexpr std::size_t max_reference_words = 5;
/// Size of NEW_FUN_EXT's Uniq field (an MD5 of the module's code).
inline constexpr std::size_t fun_uniq_length = 16;

}  // namespace vdist::dist::etf
