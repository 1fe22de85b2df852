#pragma once
/// \file
/// The store's key layout (ARCHITECTURE §5), the same paths on Xen and on a host:
///
/// ```
///   /vdist/nodes/<name>/{domid,host,generation}         where is node <name>? (toolstack writes)
///   /local/domain/<d>/data/vdist/node/{name,host,generation}   a domain's own record
///   /local/domain/<d>/data/vdist/connect/<from>-<port>  ring offers to <d> (anyone may write;
///                                                        <d> reads and removes them)
///   /local/domain/<srv>/data/vchan/<cli>/<port>/{ring-ref,event-channel}   libxenvchan's
/// ```
///
/// XenStore path components allow only [A-Za-z0-9_@-]; a node name (`alive@host`, the host
/// part often with dots) is encoded: every other byte becomes `_XX` (hex) and `_` itself `_5f`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vdist::discovery {

using store_domid = std::uint32_t;

/// A node name as one path component, and back (nullopt for text that is not an encoding).
[[nodiscard]] std::string encode_component(std::string_view text);
[[nodiscard]] std::optional<std::string> decode_component(std::string_view component);

[[nodiscard]] std::string domain_path(store_domid domid);          // /local/domain/<d>
[[nodiscard]] std::string node_entry_path(std::string_view name);  // /vdist/nodes/<enc(name)>
[[nodiscard]] std::string node_record_path(store_domid domid);     // .../data/vdist/node
[[nodiscard]] std::string connect_inbox_path(store_domid domid);   // .../data/vdist/connect

}  // namespace vdist::discovery
