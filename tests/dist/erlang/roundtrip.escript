#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% Random-term round trip for vdist's ETF codec (the C++ side drives it).
%%
%%   escript roundtrip.escript generate <Seed> <Count> <File>
%%   escript roundtrip.escript check <OriginalFile> <ReencodedFile>
%%
%% Record format (both files): a plain concatenation of records
%%
%%   <<Len:32/big-unsigned, Etf:Len/binary>>
%%
%% where Etf is a whole external term starting with the version byte 131. No
%% file header, no trailer. In the original file Etf is term_to_binary(T, Opts)
%% with Opts drawn per record from ?OPTION_SETS; in the re-encoded file record i
%% is what vdist produced by decoding and re-encoding original record i.
%%
%% generate is deterministic: the same Seed and Count give the same file on the
%% same OTP release (the local funs' hashes come from the compiler). It prints
%% one line "GENERATE count=... bytes=... tags=..." with how often each ETF tag
%% occurs in the file.
%%
%% check prints the first failures, then
%%   ROUNDTRIP checked=N equal=E byte_identical=B failures=F
%%   ROUNDTRIP_DETAIL originals=... reencoded=... minimal_originals=... byte_mismatch_large_map=...
%% and exits 0 iff F is 0 and both files hold the same number of records.
%%   equal          binary_to_term(Reencoded) =:= binary_to_term(Original), and
%%                  both re-encode to the same minimal bytes (so that -0.0 and
%%                  0.0, which are =:= in OTP 25, still count as different)
%%   byte_identical Reencoded =:= term_to_binary(T, [{minor_version,2}])
%%                  (reported, never a failure)
-mode(compile).

-define(MINIMAL, [{minor_version, 2}]).
%% The brief's four option sets, plus minor_version 0 for FLOAT_EXT.
-define(OPTION_SETS, [[], [{minor_version, 2}], [compressed], [{minor_version, 1}],
                      [{minor_version, 0}]]).
-define(MAX_DEPTH, 6).
-define(MAX_TERM_BYTES, 65536).
-define(ATOM_POOL_SIZE, 300).
-define(FAILURES_SHOWN, 5).
-define(HEX_BYTES_SHOWN, 256).

main(["generate", Seed, Count, File]) ->
    run(fun() -> generate(list_to_integer(Seed), list_to_integer(Count), File) end);
main(["check", Original, Reencoded]) ->
    run(fun() -> check(Original, Reencoded) end);
main(_) ->
    io:format(standard_error,
              "usage: roundtrip.escript generate <Seed> <Count> <File>~n"
              "       roundtrip.escript check <OriginalFile> <ReencodedFile>~n", []),
    halt(2).

run(Fun) ->
    try Fun() of
        ok -> halt(0);
        failed -> halt(1)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "roundtrip.escript: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(2)
    end.

%%% ---------------------------------------------------------------------------
%%% generate
%%% ---------------------------------------------------------------------------

generate(Seed, Count, File) when Count >= 0 ->
    _ = rand:seed(exsss, Seed),
    put(atoms, list_to_tuple(make_atom_pool(?ATOM_POOL_SIZE))),
    put(nodes, list_to_tuple(make_node_pool())),
    put(fun_templates, list_to_tuple(load_fun_templates())),
    Records = [record(generate_one()) || _ <- lists:seq(1, Count)],
    ok = file:write_file(File, Records),
    Tags = lists:foldl(fun count_tags/2, #{}, Records),
    io:format("GENERATE count=~b bytes=~b tags=~s~n",
              [Count, iolist_size(Records), format_tags(Tags)]),
    ok.

record(Etf) -> [<<(byte_size(Etf)):32>>, Etf].

generate_one() ->
    Opts = pick(?OPTION_SETS),
    Term = term(0),
    case byte_size(term_to_binary(Term, ?MINIMAL)) =< ?MAX_TERM_BYTES of
        true -> term_to_binary(Term, Opts);
        false -> generate_one()
    end.

%% A random term. Containers get rarer with depth; at ?MAX_DEPTH only leaves.
term(Depth) when Depth >= ?MAX_DEPTH -> leaf();
term(Depth) ->
    case rand:uniform(100) =< 55 - 8 * Depth of
        true -> container(Depth + 1);
        false -> leaf()
    end.

%% Sizes stay small except for the rarer cases that cross an encoding boundary
%% (255/256-element tuples, long lists, maps with more than 32 keys).
container(Depth) ->
    case rand:uniform(16) of
        N when N =< 3 -> list_to_tuple(terms(Depth, small_count()));
        N when N =< 6 -> terms(Depth, small_count());
        7 -> terms(Depth, rand:uniform(4)) ++ improper_tail(Depth);
        8 -> terms(Depth, rand:uniform(4)) ++ improper_tail(Depth);
        N when N =< 11 -> maps:from_list([{term(Depth), term(Depth)} || _ <- lists:seq(1, small_count())]);
        12 -> local_fun(Depth);
        13 -> {pick(['$gen_call', '$gen_cast']), {pid(), [alias | ref()]}, term(Depth)};
        14 -> large_map(Depth);
        15 -> list_to_tuple([leaf() || _ <- lists:seq(1, pick([255, 256, rand:uniform(300)]))]);
        16 -> [leaf() || _ <- lists:seq(1, rand:uniform(300))]
    end.

small_count() -> rand:uniform(7) - 1.

terms(Depth, N) -> [term(Depth) || _ <- lists:seq(1, N)].

%% A non-list tail (a list tail would just extend the list).
improper_tail(Depth) ->
    case term(Depth) of
        Tail when is_list(Tail) -> {Tail};
        Tail -> Tail
    end.

%% More than 32 keys: OTP stores it as a HAMT and encodes it in hash order.
%% The keys hold no atoms (nor pids, ports, refs or funs, whose node is an
%% atom): OTP 25 hashes an atom by its index in the atom table, which depends
%% on the order atoms were created in this VM, so atom keys would make the
%% encoded key order, and thus the file, differ from run to run.
large_map(Depth) ->
    Keys = rand:uniform(100 - 32) + 32,
    Pairs = [{large_map_key(I), term(max(Depth + 1, ?MAX_DEPTH - 1))}
             || I <- lists:seq(1, Keys)],
    maps:from_list(Pairs).

large_map_key(I) ->
    case rand:uniform(6) of
        1 -> I;
        2 -> -I * 1000003;
        3 -> integer_to_binary(I);
        4 -> {I, bytes(rand:uniform(4))};
        5 -> float(I) + 0.5;
        6 -> [I | bignum()]
    end.

leaf() ->
    case rand:uniform(26) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 32) - (1 bsl 31) - 1;
        3 -> pick(boundary_integers());
        4 -> bignum();
        5 -> float_value();
        6 -> pick([0.0, -0.0, 5.0e-324, -5.0e-324, 2.2250738585072014e-308,
                   1.7976931348623157e308, -1.7976931348623157e308, 1.5, 0.1]);
        7 -> atom();
        8 -> atom();
        9 -> pick([[], {}, <<>>, #{}, true, false, '']);
        10 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(60))];
        11 -> unicode_string();
        12 -> bytes(rand:uniform(64) - 1);
        13 -> bytes(pick([0, 1, 255, 256, 1024, 4000]));
        14 -> bit_binary();
        15 -> pid();
        16 -> pid();
        17 -> port();
        18 -> port();
        19 -> ref();
        20 -> ref();
        21 -> export_fun();
        22 -> local_fun(?MAX_DEPTH);
        23 -> pick([alias, ok, error, undefined, '$gen_call']);
        24 -> [leaf_atomic() | leaf_atomic()];
        25 -> -(rand:uniform(256));
        26 -> rand:uniform(1 bsl 64) - 1
    end.

%% A leaf that is not a list (for improper tails built here).
leaf_atomic() ->
    case leaf() of
        L when is_list(L) -> atom();
        T -> T
    end.

boundary_integers() ->
    [0, 255, 256, -1, 2147483647, 2147483648, -2147483648, -2147483649,
     (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64), (1 bsl 2040) - 1, 1 bsl 2040, -(1 bsl 2040)].

%% 1 to 300 bytes of magnitude, either sign.
bignum() ->
    Bytes = rand:uniform(300),
    Magnitude = binary:decode_unsigned(bytes(Bytes)) bor (1 bsl (8 * Bytes - 1)),
    pick([Magnitude, -Magnitude]).

%% Any finite double, drawn from its bit pattern (so denormals and both zeros
%% occur).
float_value() ->
    <<Bits:64>> = <<(rand:uniform(1 bsl 64) - 1):64>>,
    case <<Bits:64>> of
        <<_:1, 2047:11, _:52>> -> float_value();
        <<F/float>> -> F
    end.

unicode_string() ->
    [code_point() || _ <- lists:seq(1, rand:uniform(20))].

bit_binary() ->
    Bits = rand:uniform(7),
    <<Last:Bits, _/bitstring>> = bytes(1),
    <<(bytes(rand:uniform(20) - 1))/binary, Last:Bits>>.

bytes(N) -> rand:bytes(N).

pid() ->
    Node = node_name(),
    binary_to_term(<<131, 88, (utf8_atom(Node))/binary, (word32()):32, (word32()):32,
                     (creation()):32>>).

port() ->
    Node = node_name(),
    case rand:uniform(2) of
        1 -> binary_to_term(<<131, 89, (utf8_atom(Node))/binary, (word32()):32, (creation()):32>>);
        2 -> binary_to_term(<<131, 120, (utf8_atom(Node))/binary,
                              (rand:uniform(1 bsl 64) - 1):64, (creation()):32>>)
    end.

ref() ->
    Node = node_name(),
    Len = pick([3, 3, 3, 1, 2, 4, 5]),
    binary_to_term(<<131, 90, Len:16, (utf8_atom(Node))/binary, (creation()):32,
                     << <<(word32()):32>> || _ <- lists:seq(1, Len) >>/binary>>).

word32() -> pick([0, 1, 16#FFFFFFFF, rand:uniform(1 bsl 32) - 1, rand:uniform(1 bsl 15)]).

creation() -> pick([0, 1, 2, 3, 16#FFFFFFFF, rand:uniform(1 bsl 32) - 1]).

export_fun() ->
    erlang:make_fun(atom(), atom(), rand:uniform(256) - 1).

%% A real local fun (compiled below) with a random creator pid and random free
%% variables; the number of free variables is the template's.
local_fun(Depth) ->
    {Fun, NumFree} = pick(tuple_to_list(get(fun_templates))),
    Env = [term(Depth) || _ <- lists:seq(1, NumFree)],
    binary_to_term(<<131, (new_fun_ext(Fun, pid(), Env))/binary>>).

%% NEW_FUN_EXT: 112 Size:32 Arity Uniq:16/bytes Index:32 NumFree:32 Module
%% OldIndex OldUniq Pid FreeVars...; Size counts itself but not the tag.
new_fun_ext(Fun, Creator, Env) ->
    Info = maps:from_list(erlang:fun_info(Fun)),
    #{module := Module, arity := Arity, new_uniq := Uniq, new_index := Index,
      index := OldIndex, uniq := OldUniq} = Info,
    Body = <<Arity, Uniq:16/binary, Index:32, (length(Env)):32,
             (enc(Module))/binary, (enc(OldIndex))/binary, (enc(OldUniq))/binary,
             (enc(Creator))/binary, << <<(enc(V))/binary>> || V <- Env >>/binary>>,
    <<112, (byte_size(Body) + 4):32, Body/binary>>.

enc(Term) ->
    <<131, Bin/binary>> = term_to_binary(Term, ?MINIMAL),
    Bin.

load_fun_templates() ->
    Source = "-module(vdist_roundtrip_funs).\n"
             "-export([f0/0, f1/1, f2/2, f3/3, f5/5]).\n"
             "f0() -> fun() -> ok end.\n"
             "f1(A) -> fun(X) -> {A, X} end.\n"
             "f2(A, B) -> fun(X, Y) -> [A, B, X | Y] end.\n"
             "f3(A, B, C) -> fun(X) -> #{A => B, X => C} end.\n"
             "f5(A, B, C, D, E) -> fun(X, Y, Z) -> {A, B, C, D, E, X, Y, Z} end.\n",
    {ok, Tokens, _} = erl_scan:string(Source),
    {ok, Module, Beam} = compile:forms(forms(Tokens, []), [binary, deterministic]),
    {module, Module} = code:load_binary(Module, "vdist_roundtrip_funs.erl", Beam),
    [{Module:f0(), 0}, {Module:f1(a), 1}, {Module:f2(a, b), 2},
     {Module:f3(a, b, c), 3}, {Module:f5(a, b, c, d, e), 5}].

forms([], []) -> [];
forms([{dot, _} = Dot | Rest], Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Acc])),
    [Form | forms(Rest, [])];
forms([Token | Rest], Acc) -> forms(Rest, [Token | Acc]).

atom() -> element(rand:uniform(tuple_size(get(atoms))), get(atoms)).

node_name() -> element(rand:uniform(tuple_size(get(nodes))), get(nodes)).

%% A fixed-size pool drawn from the seed, so that the atom table stays small:
%% ASCII, Latin-1 (ATOM_EXT under minor_version 0/1), any Unicode, and long
%% atoms up to 255 characters (ATOM_UTF8_EXT once over 255 bytes).
make_atom_pool(Size) ->
    Fixed = ['', a, ok, true, false, undefined, alias, 'Ω', list_to_atom([16#E9]),
             list_to_atom(lists:duplicate(255, $z)),
             list_to_atom(lists:duplicate(255, 16#FF)),
             list_to_atom(lists:duplicate(255, 16#10FFFF))],
    Fixed ++ [random_atom() || _ <- lists:seq(1, Size - length(Fixed))].

random_atom() ->
    Length = case rand:uniform(10) of
                 10 -> rand:uniform(255);
                 _ -> rand:uniform(12)
             end,
    Chars = case rand:uniform(4) of
                1 -> [$a + rand:uniform(26) - 1 || _ <- lists:seq(1, Length)];
                2 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, Length)];
                _ -> [code_point() || _ <- lists:seq(1, Length)]
            end,
    list_to_atom(Chars).

code_point() ->
    case rand:uniform(4) of
        1 -> rand:uniform(128) - 1;
        2 -> rand:uniform(16#800 - 16#80) + 16#7F;
        3 -> pick_bmp();
        4 -> rand:uniform(16#10FFFF - 16#10000 + 1) + 16#FFFF
    end.

pick_bmp() ->
    C = rand:uniform(16#FFFF - 16#800 + 1) + 16#7FF,
    case C >= 16#D800 andalso C =< 16#DFFF of
        true -> pick_bmp();
        false -> C
    end.

make_node_pool() ->
    ['golden@127.0.0.1', 'a@b', 'vdist@xen-domu-7', 'node_with_a_long_name@example.internal',
     list_to_atom([16#3BB | "@host"]), list_to_atom("n@" ++ lists:duplicate(240, $h))].

pick(List) -> lists:nth(rand:uniform(length(List)), List).

utf8_atom(A) ->
    B = atom_to_binary(A, utf8),
    case byte_size(B) of
        S when S < 256 -> <<119, S, B/binary>>;
        S -> <<118, S:16, B/binary>>
    end.

%%% ---------------------------------------------------------------------------
%%% Tag census (a small ETF walker, independent of binary_to_term)
%%% ---------------------------------------------------------------------------

count_tags([_LenPrefix, <<131, 80, Size:32, Z/binary>>], Acc) ->
    Inner = zlib:uncompress(Z),
    Size = byte_size(Inner),
    {<<>>, Acc1} = walk(Inner, bump(80, Acc)),
    Acc1;
count_tags([_LenPrefix, <<131, Etf/binary>>], Acc) ->
    {<<>>, Acc1} = walk(Etf, Acc),
    Acc1.

bump(Tag, Acc) -> maps:update_with(Tag, fun(N) -> N + 1 end, 1, Acc).

walk(<<Tag, Rest/binary>>, Acc0) ->
    Acc = bump(Tag, Acc0),
    case Tag of
        97 -> skip(1, Rest, Acc);
        98 -> skip(4, Rest, Acc);
        70 -> skip(8, Rest, Acc);
        99 -> skip(31, Rest, Acc);
        100 -> <<L:16, _/binary>> = Rest, skip(2 + L, Rest, Acc);
        115 -> <<L, _/binary>> = Rest, skip(1 + L, Rest, Acc);
        118 -> <<L:16, _/binary>> = Rest, skip(2 + L, Rest, Acc);
        119 -> <<L, _/binary>> = Rest, skip(1 + L, Rest, Acc);
        104 -> <<N, R/binary>> = Rest, walk_n(N, R, Acc);
        105 -> <<N:32, R/binary>> = Rest, walk_n(N, R, Acc);
        106 -> {Rest, Acc};
        107 -> <<L:16, _/binary>> = Rest, skip(2 + L, Rest, Acc);
        108 -> <<N:32, R/binary>> = Rest, walk_n(N + 1, R, Acc);
        109 -> <<L:32, _/binary>> = Rest, skip(4 + L, Rest, Acc);
        77 -> <<L:32, _/binary>> = Rest, skip(5 + L, Rest, Acc);
        110 -> <<N, _/binary>> = Rest, skip(2 + N, Rest, Acc);
        111 -> <<N:32, _/binary>> = Rest, skip(5 + N, Rest, Acc);
        116 -> <<N:32, R/binary>> = Rest, walk_n(2 * N, R, Acc);
        88 -> {R, A} = walk(Rest, Acc), skip(12, R, A);
        89 -> {R, A} = walk(Rest, Acc), skip(8, R, A);
        120 -> {R, A} = walk(Rest, Acc), skip(12, R, A);
        90 -> <<N:16, R0/binary>> = Rest, {R, A} = walk(R0, Acc), skip(4 + 4 * N, R, A);
        113 -> walk_n(3, Rest, Acc);
        112 ->
            <<_Size:32, _Arity, _Uniq:16/binary, _Index:32, NumFree:32, R/binary>> = Rest,
            walk_n(4 + NumFree, R, Acc)
    end.

skip(N, Bin, Acc) ->
    <<_:N/binary, Rest/binary>> = Bin,
    {Rest, Acc}.

walk_n(0, Bin, Acc) -> {Bin, Acc};
walk_n(N, Bin, Acc) ->
    {Rest, Acc1} = walk(Bin, Acc),
    walk_n(N - 1, Rest, Acc1).

format_tags(Tags) ->
    lists:join(",", [[tag_name(T), ":", integer_to_list(N)] || {T, N} <- lists:sort(maps:to_list(Tags))]).

tag_name(T) ->
    Names = #{70 => "NEW_FLOAT", 77 => "BIT_BINARY", 80 => "COMPRESSED", 88 => "NEW_PID",
              89 => "NEW_PORT", 90 => "NEWER_REFERENCE", 97 => "SMALL_INTEGER", 98 => "INTEGER",
              99 => "FLOAT", 100 => "ATOM", 104 => "SMALL_TUPLE", 105 => "LARGE_TUPLE",
              106 => "NIL", 107 => "STRING", 108 => "LIST", 109 => "BINARY", 110 => "SMALL_BIG",
              111 => "LARGE_BIG", 112 => "NEW_FUN", 113 => "EXPORT", 115 => "SMALL_ATOM",
              116 => "MAP", 118 => "ATOM_UTF8", 119 => "SMALL_ATOM_UTF8", 120 => "V4_PORT"},
    maps:get(T, Names, integer_to_list(T)).

%%% ---------------------------------------------------------------------------
%%% check
%%% ---------------------------------------------------------------------------

check(OriginalFile, ReencodedFile) ->
    ok = io:setopts([{encoding, unicode}]),
    {ok, OriginalBin} = file:read_file(OriginalFile),
    {ok, ReencodedBin} = file:read_file(ReencodedFile),
    {Originals, OriginalTrailer} = records(OriginalBin),
    {Reencodeds, ReencodedTrailer} = records(ReencodedBin),
    OriginalTrailer =:= <<>> orelse error({truncated_original_file, byte_size(OriginalTrailer)}),
    Pairs = lists:zip(lists:sublist(Originals, length(Reencodeds)),
                      lists:sublist(Reencodeds, length(Originals))),
    Results = [{Index, compare(Original, Reencoded)}
               || {Index, {Original, Reencoded}} <- lists:enumerate(0, Pairs)],
    Failures = [R || {_, #{equal := false}} = R <- Results],
    lists:foreach(fun show_failure/1, lists:sublist(Failures, ?FAILURES_SHOWN)),
    Count = fun(Pred) -> length([x || {_, R} <- Results, Pred(R)]) end,
    Checked = length(Results),
    CountsMatch = length(Originals) =:= length(Reencodeds) andalso ReencodedTrailer =:= <<>>,
    CountsMatch orelse
        io:format("ROUNDTRIP count mismatch: ~b original records, ~b re-encoded records"
                  " (~b trailing bytes)~n",
                  [length(Originals), length(Reencodeds), byte_size(ReencodedTrailer)]),
    io:format("ROUNDTRIP checked=~b equal=~b byte_identical=~b failures=~b~n",
              [Checked, Count(fun(#{equal := E}) -> E end),
               Count(fun(#{byte_identical := B}) -> B end), length(Failures)]),
    io:format("ROUNDTRIP_DETAIL originals=~b reencoded=~b minimal_originals=~b"
              " byte_mismatch_large_map=~b~n",
              [length(Originals), length(Reencodeds),
               Count(fun(#{original_minimal := M}) -> M end),
               Count(fun(#{byte_identical := B, large_map := L}) -> not B andalso L end)]),
    case Failures =:= [] andalso CountsMatch of
        true -> ok;
        false -> failed
    end.

records(<<Len:32, Etf:Len/binary, Rest/binary>>) ->
    {Etfs, Trailer} = records(Rest),
    {[Etf | Etfs], Trailer};
records(Trailer) ->
    {[], Trailer}.

compare(Original, Reencoded) ->
    Term = binary_to_term(Original),
    Minimal = term_to_binary(Term, ?MINIMAL),
    Base = #{original => Original, reencoded => Reencoded, term => Term,
             original_minimal => Original =:= Minimal,
             byte_identical => Reencoded =:= Minimal,
             large_map => has_large_map(Term)},
    try binary_to_term(Reencoded) of
        Decoded ->
            Equal = Decoded =:= Term andalso term_to_binary(Decoded, ?MINIMAL) =:= Minimal,
            Base#{equal => Equal,
                  reason => case Equal of true -> none; false -> {decoded, Decoded} end}
    catch
        error:badarg -> Base#{equal => false, reason => binary_to_term_badarg}
    end.

has_large_map(T) when is_map(T) ->
    map_size(T) > 32 orelse
        lists:any(fun({K, V}) -> has_large_map(K) orelse has_large_map(V) end, maps:to_list(T));
has_large_map([H | T]) -> has_large_map(H) orelse has_large_map(T);
has_large_map(T) when is_tuple(T) -> has_large_map(tuple_to_list(T));
has_large_map(T) when is_function(T) ->
    case erlang:fun_info(T, type) of
        {type, local} -> {env, Env} = erlang:fun_info(T, env), has_large_map(Env);
        {type, external} -> false
    end;
has_large_map(_) -> false.

show_failure({Index, #{original := O, reencoded := R, term := T, reason := Reason}}) ->
    io:format("ROUNDTRIP failure index=~b (0-based record number)~n"
              "  term:      ~tP~n"
              "  reason:    ~tP~n"
              "  original:  ~s~n"
              "  reencoded: ~s~n",
              [Index, T, 12, Reason, 12, hex(O), hex(R)]).

hex(Bin) when byte_size(Bin) =< ?HEX_BYTES_SHOWN ->
    binary:encode_hex(Bin);
hex(Bin) ->
    io_lib:format("~s... (~b bytes)",
                  [binary:encode_hex(binary:part(Bin, 0, ?HEX_BYTES_SHOWN)), byte_size(Bin)]).
