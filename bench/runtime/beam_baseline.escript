#!/usr/bin/env escript
%% The BEAM side of runtime_bench: the same rounds as the vdist node's, on one BEAM node,
%% driven one round at a time over stdin/stdout, so that runtime_bench alternates them with
%% its own rounds and both sides see the same machine.
%%
%%   ERL_FLAGS="+S 1 +sbwt none +sbwtdcpu none +sbwtdio none" escript beam_baseline.escript
%%
%% (as runtime_bench starts it): one scheduler, as the vdist node has one thread; idle
%% schedulers sleep instead of spinning between rounds. Rounds, 10000 operations each, timed
%% here with erlang:monotonic_time:
%%
%%   stream_int    A sends 10000 small integers to B, B receives and counts them
%%   stream_tuple  the same with {seq, I}
%%   ping_pong     10000 round trips: A sends {ping, self()}, B answers pong
%%   spawn_exit    a chain of 10000 spawns: each process spawns the next and returns (normal)
%%   link_exit     a chain of 10000 spawn_linked processes (not timed), then exit(Head, kill)
%%                 until the tail is dead (a monitor on the tail: its 'DOWN' ends the timing)
%%
%% The processes of a benchmark are made on its first round and kept for the next ones.
%% Protocol (one line each way):
%%   out: config otp=25 flavor=jit schedulers=1 round=10000      (once, at start)
%%   in:  <benchmark>            out: <operations> <elapsed ns>
%%   in:  quit (or end of input) out: nothing; the node halts
%%   in:  anything else          out: error <text>
-mode(compile).

-define(ROUND, 10000).

main(_) ->
    io:format("config otp=~s flavor=~p schedulers=~p round=~p~n",
              [erlang:system_info(otp_release), erlang:system_info(emu_flavor),
               erlang:system_info(schedulers), ?ROUND]),
    serve(#{}).

serve(Rounds) ->
    case io:get_line("") of
        eof -> ok;
        {error, _} -> ok;
        Line ->
            case string:trim(Line) of
                "quit" -> ok;
                Name -> serve(run(Name, Rounds))
            end
    end.

makers() ->
    #{"stream_int" => fun stream_int/0,
      "stream_tuple" => fun stream_tuple/0,
      "ping_pong" => fun ping_pong/0,
      "spawn_exit" => fun spawn_exit/0,
      "link_exit" => fun link_exit/0}.

run(Name, Rounds) ->
    case maps:find(Name, Rounds) of
        {ok, Round} ->
            report(Round()),
            Rounds;
        error ->
            case maps:find(Name, makers()) of
                {ok, Make} ->
                    Round = Make(),
                    report(Round()),
                    Rounds#{Name => Round};
                error ->
                    io:format("error unknown benchmark ~s~n", [Name]),
                    Rounds
            end
    end.

report({Operations, ElapsedNs}) -> io:format("~p ~p~n", [Operations, ElapsedNs]).

now_ns() -> erlang:monotonic_time(nanosecond).

%% -- stream ------------------------------------------------------------------------------------

stream_int() -> stream(int).
stream_tuple() -> stream(tuple).

stream(Kind) ->
    Parent = self(),
    Sink = spawn(fun() -> sink(Parent) end),
    Source = spawn(fun() -> source(Sink, Kind) end),
    fun() ->
        Start = now_ns(),
        Sink ! {expect, ?ROUND},
        Source ! {go, ?ROUND},
        receive counted -> ok end,
        {?ROUND, now_ns() - Start}
    end.

source(Sink, Kind) ->
    receive
        {go, N} ->
            case Kind of
                int -> send_ints(Sink, N);
                tuple -> send_tuples(Sink, N)
            end,
            source(Sink, Kind)
    end.

send_ints(_, 0) -> ok;
send_ints(Sink, N) -> Sink ! N, send_ints(Sink, N - 1).

send_tuples(_, 0) -> ok;
send_tuples(Sink, N) -> Sink ! {seq, N}, send_tuples(Sink, N - 1).

sink(Parent) ->
    receive
        {expect, N} -> count(N), Parent ! counted, sink(Parent)
    end.

count(0) -> ok;
count(N) -> receive _ -> count(N - 1) end.

%% -- ping-pong ---------------------------------------------------------------------------------

ping_pong() ->
    Parent = self(),
    Ponger = spawn(fun ponger/0),
    Pinger = spawn(fun() -> pinger(Ponger, Parent) end),
    fun() ->
        Start = now_ns(),
        Pinger ! {go, ?ROUND},
        receive ponged -> ok end,
        {?ROUND, now_ns() - Start}
    end.

pinger(Ponger, Parent) ->
    receive
        {go, N} -> ping(Ponger, N), Parent ! ponged, pinger(Ponger, Parent)
    end.

ping(_, 0) -> ok;
ping(Ponger, N) -> Ponger ! {ping, self()}, receive pong -> ping(Ponger, N - 1) end.

ponger() ->
    receive
        {ping, From} -> From ! pong, ponger()
    end.

%% -- spawn + exit ------------------------------------------------------------------------------

spawn_exit() ->
    fun() ->
        Parent = self(),
        Start = now_ns(),
        spawn(fun() -> spawn_chain(?ROUND, Parent) end),
        receive chained -> ok end,
        {?ROUND, now_ns() - Start}
    end.

spawn_chain(1, Parent) -> Parent ! chained;
spawn_chain(N, Parent) -> spawn(fun() -> spawn_chain(N - 1, Parent) end), ok.

%% -- link + exit propagation -------------------------------------------------------------------

link_exit() ->
    fun() ->
        Parent = self(),
        Head = spawn(fun() -> link_chain(?ROUND, Parent) end),
        Tail = receive {tail, T} -> T end,
        Ref = monitor(process, Tail),
        Start = now_ns(),
        exit(Head, kill),
        receive {'DOWN', Ref, process, Tail, _} -> ok end,
        {?ROUND, now_ns() - Start}
    end.

link_chain(1, Parent) ->
    Parent ! {tail, self()},
    receive after infinity -> ok end;
link_chain(N, Parent) ->
    _ = spawn_link(fun() -> link_chain(N - 1, Parent) end),
    receive after infinity -> ok end.
