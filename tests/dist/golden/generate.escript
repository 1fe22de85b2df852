#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% Writes the ETF golden vectors used by vdist's codec tests.
%%
%%   escript tests/dist/golden/generate.escript [OutDir]
%%
%% OutDir defaults to the directory of this script. For each case it writes
%% <name>.etf (the exact bytes, starting with the version byte 131), and for
%% every decode-only case also <name>.reencoded.etf (what OTP produces when it
%% re-encodes the decoded term with [{minor_version,2}]). cases.txt lists the
%% cases; rejected/ holds byte strings binary_to_term refuses, listed in
%% rejected/rejected.txt. See README.md.
%%
%% The output is deterministic: the node is not distributed, and every pid,
%% port, reference and fun creator pid is built from hand-made bytes with fixed
%% values. Re-running produces identical files on the same OTP release (the
%% local fun's hash comes from the compiler, compressed bytes from zlib).
-mode(compile).

-define(MINIMAL, [{minor_version, 2}]).
-define(NODE, 'golden@127.0.0.1').
-define(CREATION, 16#5EED0001).

main([]) ->
    main([filename:dirname(filename:absname(escript:script_name()))]);
main([OutDir]) ->
    try
        check_otp_assumptions(),
        RejectDir = filename:join(OutDir, "rejected"),
        ok = filelib:ensure_dir(filename:join(RejectDir, "x")),
        remove_old_vectors(OutDir),
        remove_old_vectors(RejectDir),
        Cases = cases(),
        check_unique_names([Name || {Name, _} <- Cases]),
        Lines = [write_case(OutDir, Case) || Case <- Cases],
        ok = file:write_file(filename:join(OutDir, "cases.txt"), Lines),
        Rejected = rejected_cases(),
        check_unique_names([Name || {Name, _, _} <- Rejected]),
        RejectLines = [write_rejected(RejectDir, Case) || Case <- Rejected],
        ok = file:write_file(filename:join(RejectDir, "rejected.txt"), RejectLines),
        io:format("wrote ~b cases (~b minimal, ~b decode-only) and ~b rejected inputs to ~s~n",
                  [length(Cases),
                   length([x || {_, {minimal, _}} <- Cases]),
                   length(Cases) - length([x || {_, {minimal, _}} <- Cases]),
                   length(Rejected), OutDir])
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "generate.escript failed: ~p:~p~n~p~n",
                      [Class, Reason, Stack]),
            halt(1)
    end.

%%% ---------------------------------------------------------------------------
%%% Case list. Each case is {Name, Spec}:
%%%   {minimal, Term}        bytes = term_to_binary(Term, [{minor_version,2}])
%%%   {options, Term, Opts}  bytes = term_to_binary(Term, Opts), decode-only
%%%   {bytes, Bin}           hand-built bytes (without 131), decode-only;
%%%                          binary_to_term must accept them
%%% ---------------------------------------------------------------------------

cases() ->
    integers() ++ floats() ++ atoms() ++ tuples() ++ lists() ++ binaries()
        ++ maps() ++ pids() ++ ports() ++ refs() ++ funs() ++ nesting()
        ++ compressed() ++ legacy() ++ non_minimal().

integers() ->
    Big300 = bignum(300),
    [{int_0_small_integer,            {minimal, 0}},
     {int_255_small_integer,          {minimal, 255}},
     {int_256_integer,                {minimal, 256}},
     {int_minus_1_integer,            {minimal, -1}},
     {int_2147483647_integer,         {minimal, 2147483647}},
     {int_2147483648_small_big,       {minimal, 2147483648}},
     {int_minus_2147483648_integer,   {minimal, -2147483648}},
     {int_minus_2147483649_small_big, {minimal, -2147483649}},
     {int_2_pow_64_minus_1_small_big, {minimal, (1 bsl 64) - 1}},
     {int_minus_2_pow_64_small_big,   {minimal, -(1 bsl 64)}},
     {int_255_byte_small_big,         {minimal, (1 bsl 2040) - 1}},
     {int_256_byte_large_big,         {minimal, 1 bsl 2040}},
     {int_minus_256_byte_large_big,   {minimal, -(1 bsl 2040)}},
     {int_300_byte_large_big,         {minimal, Big300}},
     {int_minus_300_byte_large_big,   {minimal, -Big300}}].

floats() ->
    [{float_zero,                {minimal, 0.0}},
     {float_minus_zero,          {minimal, -0.0}},
     {float_1_5,                 {minimal, 1.5}},
     {float_1e300,               {minimal, 1.0e300}},
     {float_minus_1e_minus_300,  {minimal, -1.0e-300}},
     {float_smallest_denormal,   {minimal, 5.0e-324}},
     {float_largest,             {minimal, 1.7976931348623157e308}},
     {float_1_5_minor0,          {options, 1.5, [{minor_version, 0}]}},
     {float_minus_zero_minor0,   {options, -0.0, [{minor_version, 0}]}},
     {float_denormal_minor0,     {options, 5.0e-324, [{minor_version, 0}]}},
     {float_largest_minor0,      {options, 1.7976931348623157e308, [{minor_version, 0}]}}].

atoms() ->
    Ascii255 = list_to_atom(lists:duplicate(255, $a)),
    [{atom_empty,                      {minimal, ''}},
     {atom_true,                       {minimal, true}},
     {atom_255_ascii_chars,            {minimal, Ascii255}},
     %% 128 x U+00E9 is 256 UTF-8 bytes: the shortest atom needing ATOM_UTF8_EXT.
     {atom_256_utf8_bytes,             {minimal, list_to_atom(lists:duplicate(128, 16#E9))}},
     {atom_255_lambdas_510_bytes,      {minimal, list_to_atom(lists:duplicate(255, 16#3BB))}},
     {atom_255_emoji_1020_bytes,       {minimal, list_to_atom(lists:duplicate(255, 16#1F600))}},
     {atom_hello_latin1_as_utf8,       {minimal, list_to_atom([$h, 16#E9, $l, $l, $o])}},
     {atom_lambda,                     {minimal, list_to_atom([16#3BB])}},
     {atom_emoji,                      {minimal, list_to_atom([16#1F600])}},
     {atom_abc_minor1,                 {options, abc, [{minor_version, 1}]}},
     {atom_hello_latin1_minor1,        {options, list_to_atom([$h, 16#E9, $l, $l, $o]), [{minor_version, 1}]}},
     {atom_255_ascii_minor1,           {options, Ascii255, [{minor_version, 1}]}},
     {atom_lambda_default_options,     {options, {abc, list_to_atom([16#3BB])}, []}}].

tuples() ->
    [{tuple_empty,                 {minimal, {}}},
     {tuple_1,                     {minimal, {a}}},
     {tuple_255_small_tuple,       {minimal, list_to_tuple(lists:seq(1, 255))}},
     {tuple_256_large_tuple,       {minimal, list_to_tuple(lists:seq(1, 256))}}].

lists() ->
    [{list_nil,                        {minimal, []}},
     {string_abc,                      {minimal, "abc"}},
     {string_with_zero_byte,           {minimal, [0, 255, 1]}},
     {string_65535,                    {minimal, [$a + (I rem 26) || I <- lists:seq(0, 65534)]}},
     {list_65536_small_ints,           {minimal, [I rem 256 || I <- lists:seq(0, 65535)]}},
     {list_with_int_256,               {minimal, [1, 256]}},
     {list_mixed,                      {minimal, [a, 1, "x", {}, <<>>]}},
     {list_of_nil,                     {minimal, [[]]}},
     {improper_a_b,                    {minimal, [a | b]}},
     {improper_1_2_3,                  {minimal, [1, 2 | 3]}},
     {improper_tail_string,            {minimal, [1 | "ab"]}},
     {improper_tail_binary,            {minimal, [a | <<1, 2>>]}}].

binaries() ->
    [{binary_empty,         {minimal, <<>>}},
     {binary_1_kib,         {minimal, << <<(I rem 251)>> || I <- lists:seq(0, 1023) >>}},
     {bit_binary_1_3,       {minimal, <<1:3>>}},
     {bit_binary_255_7_5,   {minimal, <<255, 7:5>>}},
     {bit_binary_7_bits,    {minimal, <<127:7>>}}].

maps() ->
    [{map_empty,             {minimal, #{}}},
     {map_small_mixed_keys,  {minimal, #{1 => a, a => 1, "s" => <<>>, {t} => [],
                                         2.5 => x, <<"k">> => #{}, [] => nil}}},
     {map_32_keys_flatmap,   {minimal, int_map(32)}},
     {map_33_keys_hamt,      {minimal, int_map(33)}},
     {map_100_keys_hamt,     {minimal, int_map(100)}},
     {map_100_atom_keys,     {minimal, maps:from_list([{list_to_atom("k" ++ integer_to_list(I)), I}
                                                      || I <- lists:seq(1, 100)])}},
     {map_nested,            {minimal, #{a => #{b => #{c => #{}}}, m => int_map(40)}}},
     {map_with_map_key,      {minimal, #{#{k => v} => 1, #{} => 2}}}].

pids() ->
    [{pid_new_pid,                 {minimal, decode(new_pid(?NODE, 9, 0, ?CREATION))}},
     {pid_large_id_serial_creation,{minimal, decode(new_pid(?NODE, 16#FFFFFFFF, 16#FFFFFFFF, 16#FFFFFFFF))}},
     %% What a non-distributed OTP node sends for its own pids: creation 0.
     {pid_nonode_creation_0,       {minimal, decode(new_pid(nonode@nohost, 9, 0, 0))}},
     {pid_unicode_node,            {minimal, decode(new_pid(list_to_atom([16#3BB | "@host"]), 1, 2, 3))}}].

ports() ->
    [{port_new_port,        {minimal, decode(new_port(?NODE, 8, ?CREATION))}},
     {port_v4_64_bit_id,    {minimal, decode(v4_port(?NODE, 16#123456789A, ?CREATION))}},
     {port_v4_max_id,       {minimal, decode(v4_port(?NODE, 16#FFFFFFFFFFFFFFFF, ?CREATION))}}].

refs() ->
    %% OTP 25 make_ref(), alias() and monitor aliases all encode 3 words.
    Ref3 = decode(newer_ref(?NODE, ?CREATION, [16#0002C2E4, 16#4A90, 16#4EFD58B5])),
    Alias = decode(newer_ref(?NODE, ?CREATION, [16#0002C2E7, 16#4A91, 16#4EFD58B5])),
    [{ref_newer_reference_3_words, {minimal, Ref3}},
     {ref_alias_3_words,           {minimal, Alias}},
     {ref_1_word,                  {minimal, decode(newer_ref(?NODE, ?CREATION, [7]))}},
     {ref_5_words,                 {minimal, decode(newer_ref(?NODE, ?CREATION, [1, 2, 3, 4, 16#FFFFFFFF]))}},
     {ref_0_words,                 {minimal, decode(newer_ref(?NODE, ?CREATION, []))}},
     {gen_call_tag_alias,          {minimal, [alias | Alias]}},
     {gen_call_request,            {minimal, {'$gen_call',
                                              {decode(new_pid(?NODE, 90, 0, ?CREATION)), [alias | Alias]},
                                              {get, key}}}}].

funs() ->
    Module = load_fun_module(),
    Creator = decode(new_pid(?NODE, 77, 0, ?CREATION)),
    Closure = Module:closure(1, <<"two">>, [three]),
    NoFree = Module:no_free(),
    [{fun_export,                   {minimal, fun lists:map/2}},
     {fun_export_unknown_module,    {minimal, erlang:make_fun(no_such_module, list_to_atom([16#3BB]), 255)}},
     {fun_local_3_free_vars,        {minimal, decode(rebuild_fun(Closure, Creator))}},
     {fun_local_no_free_vars,       {minimal, decode(rebuild_fun(NoFree, Creator))}},
     {fun_local_nested_free_var,    {minimal, decode(rebuild_fun(Module:closure(NoFree, #{k => Creator}, -1.5), Creator))}}].

nesting() ->
    [{nested_list_depth_100,   {minimal, nest(100, fun(X) -> [X] end, leaf)}},
     {nested_tuple_depth_100,  {minimal, nest(100, fun(X) -> {X} end, leaf)}},
     {nested_mixed_depth_100,  {minimal, nest(100, fun(X) -> #{k => [{X, <<1>>}]} end, leaf)}}].

compressed() ->
    Term = {lists:duplicate(100, <<"hello">>), [abc, 1.5, lists:seq(1, 300)]},
    [{compressed_default_level,  {options, Term, [compressed]}},
     {compressed_level_9,        {options, Term, [{compressed, 9}]}},
     {compressed_minor2,         {options, Term, [compressed, {minor_version, 2}]}}].

%% Legacy tags OTP 25 no longer emits but still accepts.
legacy() ->
    [{legacy_pid_ext,             {bytes, <<103, (atom_ext(?NODE))/binary, 9:32, 0:32, 3>>}},
     {legacy_port_ext,            {bytes, <<102, (atom_ext(?NODE))/binary, 8:32, 3>>}},
     {legacy_new_reference_ext,   {bytes, <<114, 3:16, (atom_ext(?NODE))/binary, 3,
                                            16#0002C2E4:32, 16#4A90:32, 16#4EFD58B5:32>>}},
     {legacy_reference_ext,       {bytes, <<101, (atom_ext(?NODE))/binary, 5:32, 1>>}},
     {legacy_small_atom_ext,      {bytes, <<115, 5, $h, 16#E9, $l, $l, $o>>}},
     {legacy_atom_ext,            {bytes, <<100, 5:16, $h, 16#E9, $l, $l, $o>>}},
     {legacy_atom_ext_255_latin1, {bytes, <<100, 255:16, (binary:copy(<<16#FF>>, 255))/binary>>}},
     {legacy_float_ext,           {bytes, float_ext("-1.25000000000000000000e+02")}},
     {legacy_new_pid_atom_ext_node,{bytes, <<88, (atom_ext(?NODE))/binary, 9:32, 0:32, ?CREATION:32>>}},
     {legacy_export_small_atom_ext,{bytes, <<113, 115, 5, "lists", 115, 3, "map", 97, 2>>}}].

%% Encodings OTP accepts but never produces for the decoded value.
non_minimal() ->
    N = utf8_atom(?NODE),
    [{nonminimal_integer_for_5,        {bytes, <<98, 5:32>>}},
     {nonminimal_small_big_for_5,      {bytes, <<110, 1, 0, 5>>}},
     {nonminimal_small_big_zero_len,   {bytes, <<110, 0, 0>>}},
     {nonminimal_small_big_minus_zero, {bytes, <<110, 1, 1, 0>>}},
     {nonminimal_small_big_high_zeros, {bytes, <<110, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0>>}},
     {nonminimal_large_big_for_7,      {bytes, <<111, 1:32, 0, 7>>}},
     {nonminimal_large_big_2_pow_64,   {bytes, <<111, 9:32, 0, 0:64, 1>>}},
     {nonminimal_large_tuple_2,        {bytes, <<105, 2:32, 97, 1, 97, 2>>}},
     {nonminimal_list_of_bytes,        {bytes, <<108, 3:32, 97, $a, 97, $b, 97, $c, 106>>}},
     {nonminimal_list_zero_length,     {bytes, <<108, 0:32, 106>>}},
     {nonminimal_string_empty,         {bytes, <<107, 0:16>>}},
     {nonminimal_atom_utf8_short,      {bytes, <<118, 3:16, "abc">>}},
     {nonminimal_v4_port_small_id,     {bytes, <<120, N/binary, 42:64, ?CREATION:32>>}},
     {nonminimal_bit_binary_8_bits,    {bytes, <<77, 2:32, 8, 1, 2>>}},
     {nonminimal_bit_binary_empty,     {bytes, <<77, 0:32, 0>>}},
     {nonminimal_bit_binary_dirty_pad, {bytes, <<77, 2:32, 3, 16#AB, 16#FF>>}},
     {nonminimal_map_unsorted_keys,    {bytes, <<116, 3:32, 100, 1:16, "b", 97, 2,
                                                 97, 1, 97, 1, 119, 1, "a", 97, 3>>}},
     {nonminimal_map_33_sorted_keys,   {bytes, map_ext([{I, I} || I <- lists:seq(1, 33)])}}].

%%% ---------------------------------------------------------------------------
%%% Inputs binary_to_term rejects in OTP 25 (vdist must reject them too).
%%% {Name, Bytes without 131, Why}; Why is one line of text.
%%% ---------------------------------------------------------------------------

rejected_cases() ->
    N = utf8_atom(?NODE),
    [{reject_empty,                   <<>>, "no term after the version byte"},
     {reject_unknown_tag,             <<200>>, "tag 200 is not an ETF tag"},
     {reject_truncated_integer,       <<98, 0, 0>>, "INTEGER_EXT cut short"},
     {reject_truncated_list,          <<108, 2:32, 97, 1>>, "LIST_EXT with one of two elements and no tail"},
     {reject_pid_ext_creation_4,      <<103, (atom_ext(?NODE))/binary, 1:32, 2:32, 4>>,
      "PID_EXT creation must fit in 2 bits"},
     {reject_newer_reference_6_words, <<90, 6:16, N/binary, 1:32, 1:32, 2:32, 3:32, 4:32, 5:32, 6:32>>,
      "NEWER_REFERENCE_EXT has at most 5 id words"},
     {reject_pid_node_not_atom,       <<88, 97, 1, 1:32, 2:32, 3:32>>, "pid node must be an atom"},
     {reject_atom_ext_256_chars,      <<100, 256:16, (binary:copy(<<"a">>, 256))/binary>>,
      "atoms are limited to 255 characters"},
     {reject_atom_utf8_256_chars,     <<118, 512:16, (binary:copy(<<16#CE, 16#BB>>, 256))/binary>>,
      "atoms are limited to 255 characters"},
     {reject_atom_utf8_invalid,       <<119, 2, 16#FF, 16#FF>>, "invalid UTF-8"},
     {reject_atom_utf8_overlong,      <<119, 2, 16#C0, 16#80>>, "overlong UTF-8"},
     {reject_atom_utf8_surrogate,     <<119, 3, 16#ED, 16#A0, 16#80>>, "UTF-8 encoded surrogate"},
     {reject_float_nan,               <<70, 16#7FF8000000000000:64>>, "NaN is not an Erlang float"},
     {reject_float_infinity,          <<70, 16#7FF0000000000000:64>>, "infinity is not an Erlang float"},
     {reject_float_ext_garbage,       float_ext("one point five"), "FLOAT_EXT text is not a number"},
     {reject_bit_binary_0_bits,       <<77, 1:32, 0, 16#FF>>, "BIT_BINARY_EXT bits must be 1..8 for a non-empty binary"},
     {reject_map_duplicate_keys,      <<116, 2:32, 97, 1, 97, 2, 97, 1, 97, 3>>, "duplicate map key"},
     {reject_atom_cache_ref,          <<82, 0>>, "ATOM_CACHE_REF is only valid inside a distribution header"},
     {reject_old_fun_ext,             <<117, 0:32, (strip(term_to_binary(self())))/binary>>,
      "FUN_EXT (117) was removed in OTP 23"},
     {reject_compressed_wrong_size,   <<80, 5:32, (zlib:compress(<<97, 1>>))/binary>>,
      "uncompressed size does not match"},
     {reject_compressed_nested,       <<80, 3:32, (zlib:compress(<<131, 97, 1>>))/binary>>,
      "the compressed data must not repeat the version byte"},
     {reject_local_ext,               <<121, 97, 1>>, "LOCAL_EXT (121, OTP 26) is unknown to OTP 25"}].

%%% ---------------------------------------------------------------------------
%%% Writing
%%% ---------------------------------------------------------------------------

write_case(OutDir, {Name, Spec}) ->
    {Encoding, Term, Bytes} = case Spec of
        {minimal, T} ->
            {"minimal", T, term_to_binary(T, ?MINIMAL)};
        {options, T, Opts} ->
            {"decode-only", T, term_to_binary(T, Opts)};
        {bytes, B} ->
            Full = <<131, B/binary>>,
            {"decode-only", binary_to_term(Full), Full}
    end,
    %% Every vector must decode back to its term, and a decode-only vector must
    %% really differ from the minimal form (otherwise it tests nothing new).
    Term = binary_to_term(Bytes),
    Minimal = term_to_binary(Term, ?MINIMAL),
    write(OutDir, atom_to_list(Name) ++ ".etf", Bytes),
    case Encoding of
        "minimal" ->
            ok;
        "decode-only" when Bytes =:= Minimal ->
            error({decode_only_case_is_minimal, Name});
        "decode-only" ->
            write(OutDir, atom_to_list(Name) ++ ".reencoded.etf", Minimal)
    end,
    Text = expected_text(Term),
    [atom_to_list(Name), $\s, Encoding, $\s, unicode:characters_to_binary(Text), $\n].

write_rejected(Dir, {Name, Bin, Why}) ->
    Full = <<131, Bin/binary>>,
    try binary_to_term(Full) of
        Term -> error({rejected_case_accepted, Name, Term})
    catch
        error:badarg -> ok
    end,
    write(Dir, atom_to_list(Name) ++ ".etf", Full),
    [atom_to_list(Name), $\s, Why, $\n].

write(Dir, File, Bytes) ->
    ok = file:write_file(filename:join(Dir, File), Bytes).

remove_old_vectors(Dir) ->
    [ok = file:delete(F) || F <- filelib:wildcard(filename:join(Dir, "*.etf"))],
    ok.

check_unique_names(Names) ->
    case length(Names) =:= length(lists:usort(Names)) of
        true -> ok;
        false -> error({duplicate_case_names, Names -- lists:usort(Names)})
    end.

%% io_lib:format("~w") of the term, flattened, except that pids, ports and
%% references are written as #Pid{...}, #Port{...}, #Ref{...} with their node,
%% ids and creation: ~w prints a per-run node table index instead.
expected_text(Term) ->
    put(markers, []),
    Text = lists:flatten(io_lib:format("~w", [mark(Term)])),
    Final = lists:flatten(lists:foldl(
              fun({Marker, Replacement}, Acc) ->
                      string:replace(Acc, "'" ++ atom_to_list(Marker) ++ "'", Replacement, all)
              end, Text, get(markers))),
    lists:member($\n, Final) andalso error({newline_in_text, Final}),
    Final.

mark(T) when is_pid(T); is_port(T); is_reference(T) ->
    Markers = get(markers),
    Marker = list_to_atom("$vdist_marker_" ++ integer_to_list(length(Markers))),
    put(markers, [{Marker, identity_text(T)} | Markers]),
    Marker;
mark(T) when is_list(T) -> mark_list(T);
mark(T) when is_tuple(T) -> list_to_tuple([mark(E) || E <- tuple_to_list(T)]);
mark(T) when is_map(T) -> maps:from_list([{mark(K), mark(V)} || {K, V} <- maps:to_list(T)]);
mark(T) -> T.

mark_list([H | T]) -> [mark(H) | mark_list(T)];
mark_list([]) -> [];
mark_list(Tail) -> mark(Tail).

identity_text(T) ->
    <<131, Tag, Rest/binary>> = term_to_binary(T, ?MINIMAL),
    case Tag of
        88 ->
            {Node, <<Id:32, Serial:32, Creation:32>>} = split_atom(Rest),
            io_lib:format("#Pid{node=~w,id=~b,serial=~b,creation=~b}", [Node, Id, Serial, Creation]);
        89 ->
            {Node, <<Id:32, Creation:32>>} = split_atom(Rest),
            io_lib:format("#Port{node=~w,id=~b,creation=~b}", [Node, Id, Creation]);
        120 ->
            {Node, <<Id:64, Creation:32>>} = split_atom(Rest),
            io_lib:format("#Port{node=~w,id=~b,creation=~b}", [Node, Id, Creation]);
        90 ->
            <<Len:16, AfterLen/binary>> = Rest,
            {Node, <<Creation:32, Words/binary>>} = split_atom(AfterLen),
            Len = byte_size(Words) div 4,
            io_lib:format("#Ref{node=~w,creation=~b,ids=~w}",
                          [Node, Creation, [W || <<W:32>> <= Words]])
    end.

split_atom(<<119, Len, Name:Len/binary, Rest/binary>>) -> {binary_to_atom(Name, utf8), Rest};
split_atom(<<118, Len:16, Name:Len/binary, Rest/binary>>) -> {binary_to_atom(Name, utf8), Rest}.

%%% ---------------------------------------------------------------------------
%%% Hand-built ETF pieces (without the 131 version byte)
%%% ---------------------------------------------------------------------------

decode(Bin) -> binary_to_term(<<131, Bin/binary>>).

strip(<<131, Bin/binary>>) -> Bin.

utf8_atom(A) ->
    B = atom_to_binary(A, utf8),
    case byte_size(B) of
        S when S < 256 -> <<119, S, B/binary>>;
        S -> <<118, S:16, B/binary>>
    end.

atom_ext(A) ->
    B = atom_to_binary(A, latin1),
    <<100, (byte_size(B)):16, B/binary>>.

new_pid(Node, Id, Serial, Creation) ->
    <<88, (utf8_atom(Node))/binary, Id:32, Serial:32, Creation:32>>.

new_port(Node, Id, Creation) ->
    <<89, (utf8_atom(Node))/binary, Id:32, Creation:32>>.

v4_port(Node, Id, Creation) ->
    <<120, (utf8_atom(Node))/binary, Id:64, Creation:32>>.

newer_ref(Node, Creation, Words) ->
    <<90, (length(Words)):16, (utf8_atom(Node))/binary, Creation:32,
      << <<W:32>> || W <- Words >>/binary>>.

float_ext(Text) ->
    Bin = list_to_binary(Text),
    <<99, Bin/binary, 0:((31 - byte_size(Bin)) * 8)>>.

map_ext(Pairs) ->
    <<116, (length(Pairs)):32,
      << <<(strip(term_to_binary(K, ?MINIMAL)))/binary, (strip(term_to_binary(V, ?MINIMAL)))/binary>>
         || {K, V} <- Pairs >>/binary>>.

%% NEW_FUN_EXT for a real local fun, with its creator pid replaced by a fixed
%% one so that the bytes do not depend on which process made the fun.
%% Layout: 112 Size:32 Arity Uniq:16/bytes Index:32 NumFree:32 Module OldIndex
%% OldUniq Pid FreeVars...; Size counts itself but not the tag.
rebuild_fun(Fun, Creator) ->
    Info = erlang:fun_info(Fun),
    {type, local} = lists:keyfind(type, 1, Info),
    {module, Module} = lists:keyfind(module, 1, Info),
    {arity, Arity} = lists:keyfind(arity, 1, Info),
    {new_uniq, Uniq} = lists:keyfind(new_uniq, 1, Info),
    {new_index, Index} = lists:keyfind(new_index, 1, Info),
    {index, OldIndex} = lists:keyfind(index, 1, Info),
    {uniq, OldUniq} = lists:keyfind(uniq, 1, Info),
    {env, Env} = lists:keyfind(env, 1, Info),
    Enc = fun(T) -> strip(term_to_binary(T, ?MINIMAL)) end,
    Body = <<Arity, Uniq:16/binary, Index:32, (length(Env)):32,
             (Enc(Module))/binary, (Enc(OldIndex))/binary, (Enc(OldUniq))/binary,
             (Enc(Creator))/binary, << <<(Enc(V))/binary>> || V <- Env >>/binary>>,
    <<112, (byte_size(Body) + 4):32, Body/binary>>.

%% A tiny module compiled from source here, so that its funs are real compiler
%% output (deterministic for a given OTP release).
load_fun_module() ->
    Source = ["-module(vdist_golden_fun).\n",
              "-export([closure/3, no_free/0]).\n",
              "closure(A, B, C) -> fun(X, Y) -> {A, B, C, X, Y} end.\n",
              "no_free() -> fun(X) -> X end.\n"],
    {ok, Tokens, _} = erl_scan:string(lists:flatten(Source)),
    Forms = forms(Tokens, []),
    {ok, Module, Beam} = compile:forms(Forms, [binary, deterministic, return_errors]),
    {module, Module} = code:load_binary(Module, "vdist_golden_fun.erl", Beam),
    Module.

forms([], []) -> [];
forms([{dot, _} = Dot | Rest], Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Acc])),
    [Form | forms(Rest, [])];
forms([Token | Rest], Acc) -> forms(Rest, [Token | Acc]).

%%% ---------------------------------------------------------------------------
%%% Term helpers
%%% ---------------------------------------------------------------------------

%% A positive integer of exactly Bytes bytes with a fixed pattern.
bignum(Bytes) ->
    binary:decode_unsigned(<< <<(((I * 37) rem 255) + 1)>> || I <- lists:seq(1, Bytes) >>).

int_map(Keys) -> maps:from_list([{I, I * I} || I <- lists:seq(1, Keys)]).

nest(0, _, Leaf) -> Leaf;
nest(N, Wrap, Leaf) -> Wrap(nest(N - 1, Wrap, Leaf)).

%%% ---------------------------------------------------------------------------
%%% What this file assumes about OTP 25's own encoder. Fails loudly if an OTP
%%% release changes it, since the README and the C++ tests rely on it.
%%% ---------------------------------------------------------------------------

check_otp_assumptions() ->
    %% Default options are minor_version 1: ATOM_EXT for Latin-1 atoms (never
    %% SMALL_ATOM_EXT), SMALL_ATOM_UTF8_EXT for others, NEW_FLOAT_EXT.
    <<131, 100, 0, 3, "abc">> = term_to_binary(abc),
    <<131, 100, 0, 5, $h, 16#E9, "llo">> = term_to_binary(list_to_atom([$h, 16#E9, $l, $l, $o])),
    <<131, 119, 2, 16#CE, 16#BB>> = term_to_binary(list_to_atom([16#3BB])),
    <<131, 70, _:64>> = term_to_binary(1.5),
    %% minor_version 0 writes FLOAT_EXT (31 bytes of "%.20e" text).
    <<131, 99, _:31/binary>> = term_to_binary(1.5, [{minor_version, 0}]),
    %% Local identifiers: NEW_PID_EXT, NEW_PORT_EXT, NEWER_REFERENCE_EXT with
    %% 3 words (plain refs, aliases and monitor aliases alike).
    <<131, 88, _/binary>> = term_to_binary(self()),
    Port = open_port({spawn, "true"}, []),
    <<131, 89, _/binary>> = term_to_binary(Port),
    catch port_close(Port),
    <<131, 90, 0, 3, _/binary>> = term_to_binary(make_ref()),
    Alias = alias(),
    <<131, 90, 0, 3, _/binary>> = term_to_binary(Alias),
    unalias(Alias),
    %% Funs: NEW_FUN_EXT and EXPORT_EXT.
    X = erlang:phash2(self()),
    <<131, 112, _/binary>> = term_to_binary(fun() -> X end),
    <<131, 113, _/binary>> = term_to_binary(fun lists:map/2),
    ok.
