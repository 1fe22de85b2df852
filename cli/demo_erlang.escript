#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% The Erlang half of `vdist demo`: a real OTP node meets two C++ nodes. `vdist demo` runs it
%% inside a distributed erl (`-name demo@127.0.0.1 -setcookie ...`) as
%%
%%   erl ... -run escript start -extra demo_erlang.escript Cpp1 Cpp2
%%
%% It talks to the driver through its standard output: every line is shown as `erl> ...`,
%% except the lines starting with "@", which ask the driver to act:
%%
%%   @ready            listening: start the C++ nodes (Cpp2 pings this node once it is up)
%%   @stop Node        stop that C++ node now (SIGTERM)
%%
%% It prints "result: N checks, all passed" and halts with 0, or names each failed check and
%% halts with 1. A watchdog halts it with 2 if the whole run takes longer than 20 s.
-mode(compile).

-define(WAIT, 10000).
-define(MESSAGES, 10000).

main([Cpp1Text, Cpp2Text]) ->
    {Cpp1, Cpp2} = {list_to_atom(Cpp1Text), list_to_atom(Cpp2Text)},
    spawn(fun() ->
                  timer:sleep(20000),
                  say("watchdog: the demo took longer than 20 s, stopping"),
                  halt(2)
          end),
    put(failures, []),
    put(checks, 0),
    ok = net_kernel:monitor_nodes(true),
    say("~s up, cookie set; waiting for ~s to ping us", [node(), Cpp2]),
    control("@ready"),
    await_nodeup(Cpp2),
    say("nodes() = ~p", [nodes()]),
    section("net_adm:ping from Erlang"),
    [check(io_lib:format("net_adm:ping(~s) = ~p", [N, R]), R =:= pong)
     || N <- [Cpp1, Cpp2], R <- [net_adm:ping(N)]],
    report_nodeups(),
    say("nodes() = ~p", [nodes()]),
    section("gen_server:call({echo, Node}, Term): the C++ echo server answers with Term"),
    [echo_call(Cpp1, Term) || Term <- terms()],
    section("~b numbered messages to {echo, Node}, each {self(), {seq, N}}, back as {seq, N}",
            [?MESSAGES]),
    [stream(N) || N <- [Cpp1, Cpp2]],
    section("rpc and erpc into C++ functions"),
    rpc_call(Cpp1, erlang, node, [], fun(R) -> R =:= Cpp1 end),
    rpc_call(Cpp2, erlang, nodes, [], fun(R) -> lists:member(node(), R) end),
    erpc_call(Cpp1, lists, reverse, [[1, 2, 3]], fun(R) -> R =:= [3, 2, 1] end),
    rpc_call(Cpp1, no_such_module, f, [], fun({badrpc, {'EXIT', {undef, _}}}) -> true;
                                             (_) -> false
                                          end),
    section("a C++ node goes away"),
    watch_stop(Cpp1),
    say("nodes() = ~p", [nodes()]),
    Still = gen_server:call({echo, Cpp2}, still_there, ?WAIT),
    check(io_lib:format("~s still answers: ~p", [Cpp2, Still]), Still =:= still_there),
    finish().

%% -- steps --------------------------------------------------------------------------------------

await_nodeup(Node) ->
    case lists:member(Node, nodes()) of
        true ->
            ok;
        false ->
            receive
                {nodeup, Node} -> say("nodeup ~s: it connected to us", [Node])
            after ?WAIT ->
                    check(io_lib:format("no nodeup from ~s within 10 s", [Node]), false),
                    finish()
            end
    end.

%% The nodeups that came with connections this node set up (net_adm:ping).
report_nodeups() ->
    receive
        {nodeup, Node} ->
            say("nodeup ~s: we connected to it", [Node]),
            report_nodeups()
    after 0 ->
            ok
    end.

terms() ->
    [hello,
     -42,
     1 bsl 100,
     3.14159,
     <<"bytes", 0, 255>>,
     <<2#101:3>>,
     "a string",
     [1, two, <<"three">>, [4.0]],
     {tuple, {nested, []}},
     #{name => vdist, versions => [25, 26]},
     self(),
     hd(erlang:ports()),
     make_ref(),
     fun lists:reverse/1].

echo_call(Node, Term) ->
    Reply = gen_server:call({echo, Node}, Term, ?WAIT),
    check(io_lib:format("~s: ~0p", [type(Term), Reply]), Reply =:= Term).

type(T) when is_atom(T) -> "atom";
type(T) when is_integer(T), abs(T) > 1 bsl 64 -> "bignum";
type(T) when is_integer(T) -> "integer";
type(T) when is_float(T) -> "float";
type(T) when is_binary(T) -> "binary";
type(T) when is_bitstring(T) -> "bitstring";
type(T) when is_list(T) ->
    case io_lib:printable_list(T) of
        true -> "string";
        false -> "list"
    end;
type(T) when is_tuple(T) -> "tuple";
type(T) when is_map(T) -> "map";
type(T) when is_pid(T) -> "pid";
type(T) when is_port(T) -> "port";
type(T) when is_reference(T) -> "reference";
type(T) when is_function(T) -> "fun".

%% Sends everything first, then reads the replies: the echo server and the connection see a
%% burst, and the replies must arrive in the order sent (Erlang's per-pair ordering).
stream(Node) ->
    Start = erlang:monotonic_time(),
    [{echo, Node} ! {self(), {seq, N}} || N <- lists:seq(1, ?MESSAGES)],
    Result = receive_in_order(1),
    Micros = erlang:convert_time_unit(erlang:monotonic_time() - Start, native, microsecond),
    PerSecond = ?MESSAGES * 1000000 div max(Micros, 1),
    case Result of
        ok ->
            check(io_lib:format("~s: ~b back in order in ~.1f ms (~b msg/s round trip)",
                                [Node, ?MESSAGES, Micros / 1000, PerSecond]), true);
        {error, What} ->
            check(io_lib:format("~s: ~s", [Node, What]), false)
    end.

receive_in_order(N) when N > ?MESSAGES ->
    ok;
receive_in_order(N) ->
    receive
        {seq, N} -> receive_in_order(N + 1);
        {seq, Other} -> {error, io_lib:format("expected {seq, ~b}, got {seq, ~b}", [N, Other])}
    after ?WAIT ->
            {error, io_lib:format("{seq, ~b} did not come back within 10 s", [N])}
    end.

rpc_call(Node, M, F, A, Ok) ->
    R = rpc:call(Node, M, F, A, ?WAIT),
    check(io_lib:format("rpc:call(~s, ~s, ~s, ~0p) = ~0p", [Node, M, F, A, R]), Ok(R)).

erpc_call(Node, M, F, A, Ok) ->
    R = try erpc:call(Node, M, F, A, ?WAIT) catch Class:Reason -> {Class, Reason} end,
    check(io_lib:format("erpc:call(~s, ~s, ~s, ~0p) = ~0p", [Node, M, F, A, R]), Ok(R)).

%% Monitors Node's echo server and the node itself, asks the driver to stop it, and shows what
%% arrives: a 'DOWN' with noconnection and a nodedown.
watch_stop(Node) ->
    Ref = erlang:monitor(process, {echo, Node}),
    true = erlang:monitor_node(Node, true),
    say("monitoring {echo, ~s} and the node; asking the driver to stop it", [Node]),
    control("@stop ~s", [Node]),
    receive
        {'DOWN', Ref, process, {echo, Node}, Reason} ->
            check(io_lib:format("'DOWN' for {echo, ~s}: ~p", [Node, Reason]),
                  Reason =:= noconnection)
    after ?WAIT ->
            check("no 'DOWN' within 10 s", false)
    end,
    receive
        {nodedown, Node} -> check(io_lib:format("nodedown ~s", [Node]), true)
    after ?WAIT ->
            check("no nodedown within 10 s", false)
    end,
    flush_nodedowns(Node),
    Ping = net_adm:ping(Node),
    check(io_lib:format("net_adm:ping(~s) = ~p", [Node, Ping]), Ping =:= pang).

%% monitor_nodes and monitor_node each deliver one nodedown.
flush_nodedowns(Node) ->
    receive {nodedown, Node} -> flush_nodedowns(Node) after 0 -> ok end.

finish() ->
    Failures = lists:reverse(get(failures)),
    case Failures of
        [] ->
            say("~nresult: ~b checks, all passed", [get(checks)]),
            halt(0);
        _ ->
            say("~nresult: ~b of ~b checks FAILED:", [length(Failures), get(checks)]),
            [say("  ~s", [F]) || F <- Failures],
            halt(1)
    end.

%% -- output -------------------------------------------------------------------------------------

check(What, Passed) ->
    put(checks, get(checks) + 1),
    Text = lists:flatten(What),
    case Passed of
        true -> say("  ok    ~s", [Text]);
        false ->
            put(failures, [Text | get(failures)]),
            say("  FAIL  ~s", [Text])
    end.

section(Format) -> section(Format, []).
section(Format, Args) -> say("~n" ++ Format, Args).

say(Text) -> say(Text, []).
say(Format, Args) -> io:format(Format ++ "~n", Args).

control(Format) -> control(Format, []).
control(Format, Args) -> io:format(Format ++ "~n", Args).
