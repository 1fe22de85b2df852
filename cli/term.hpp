#pragma once
/// \file
/// `vdist term print | reencode | parse`: one external term or its Erlang text, from stdin to
/// stdout.

namespace CLI {
class App;
}  // namespace CLI

namespace vdist::cli {

/// Add `term` and its subcommands.
void add_term_commands(CLI::App& app);

}  // namespace vdist::cli
