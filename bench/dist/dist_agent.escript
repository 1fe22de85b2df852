#!/usr/bin/env escript
%% The erl side of dist_bench: one real erl node (standard TCP distribution) that answers
%% the bench's peers and, on request, drives a measurement against another node.
%%
%% dist_bench starts it with the node name and cookie in ERL_FLAGS
%% ("-name erl_a@127.0.0.1 -setcookie C -start_epmd false -kernel connect_all false") and
%% ERL_EPMD_PORT set to its private epmd. The C++ agent (bench/src/dist_agent.cpp) speaks the
%% same protocol and runs the same rounds, so every pair of nodes is measured alike.
%%
%% Registered process `dist_bench` (the responder), one receive for every message:
%%   {hello, From}           -> From ! {hello, self()}  (the driver learns the pid once)
%%   {ping, From, Bin}       -> From ! {pong, Bin}      (round trip: Bin travels both ways)
%%   {stream, From, K}       -> starts counting a stream, acks go to From
%%   {data, Bin}             -> counts; every K-th: From ! {ack, Count}
%%
%% Commands on stdin, one line each, one reply line on stdout:
%%   pingpong Peer Size Warmup N   -> ok T1 ... TN   (ns per round trip, after Warmup trips)
%%   stream Peer Size M W K        -> ok Ns          (M messages {data, Bin}, at most W not yet
%%                                                    acked, the peer acks every K; Ns from the
%%                                                    first send to the ack of the M-th)
%%   quit (or end of input)        -> the node halts
%% A failure answers `error Text`. At start: `ready Node otp=25 flavor=jit schedulers=N`.
-mode(compile).

-define(TIMEOUT, 30000).  % no answer from the peer for this long: the command fails

main(_) ->
    case node() of
        nonode@nohost ->
            io:format("error not distributed (start with -name in ERL_FLAGS)~n"),
            halt(1);
        Node ->
            register(dist_bench, spawn(fun() -> responder(none, 1, 0) end)),
            io:format("ready ~s otp=~s flavor=~p schedulers=~p~n",
                      [Node, erlang:system_info(otp_release), erlang:system_info(emu_flavor),
                       erlang:system_info(schedulers)]),
            serve()
    end.

serve() ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(0);
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["quit"] -> halt(0);
                Words -> reply(catch command(Words)), serve()
            end
    end.

reply({ok, Numbers}) ->
    io:put_chars(["ok", [[$\s, integer_to_list(N)] || N <- Numbers], $\n]);
reply(Other) ->
    io:format("error ~0p~n", [Other]).

command(["pingpong", Peer, Size, Warmup, N]) ->
    pingpong(list_to_atom(Peer), list_to_integer(Size), list_to_integer(Warmup),
             list_to_integer(N));
command(["stream", Peer, Size, M, W, K]) ->
    stream(list_to_atom(Peer), list_to_integer(Size), list_to_integer(M), list_to_integer(W),
           list_to_integer(K));
command(Words) ->
    {unknown_command, Words}.

now_ns() -> erlang:monotonic_time(nanosecond).

payload(Size) -> binary:copy(<<7>>, Size).

%% The responder's pid on Peer (connects on first use).
resolve(Peer) ->
    {dist_bench, Peer} ! {hello, self()},
    receive
        {hello, Pid} -> Pid
    after ?TIMEOUT -> exit({no_answer_from, Peer})
    end.

%% -- the responder --------------------------------------------------------------------------

responder(AckTo, K, Count) ->
    receive
        {data, _} ->
            Next = Count + 1,
            case Next rem K of
                0 -> AckTo ! {ack, Next};
                _ -> ok
            end,
            responder(AckTo, K, Next);
        {ping, From, Bin} ->
            From ! {pong, Bin},
            responder(AckTo, K, Count);
        {stream, From, NewK} ->
            responder(From, NewK, 0);
        {hello, From} ->
            From ! {hello, self()},
            responder(AckTo, K, Count);
        _ ->
            responder(AckTo, K, Count)
    end.

%% -- round trips ----------------------------------------------------------------------------

pingpong(Peer, Size, Warmup, N) ->
    To = resolve(Peer),
    Bin = payload(Size),
    _ = trips(To, Bin, Warmup, []),
    {ok, lists:reverse(trips(To, Bin, N, []))}.

trips(_To, _Bin, 0, Samples) ->
    Samples;
trips(To, Bin, Left, Samples) ->
    Start = now_ns(),
    To ! {ping, self(), Bin},
    receive
        {pong, _} -> trips(To, Bin, Left - 1, [now_ns() - Start | Samples])
    after ?TIMEOUT -> exit(pong_timeout)
    end.

%% -- one-way stream -------------------------------------------------------------------------

stream(Peer, Size, M, W, K) when M rem K =:= 0, K =< W ->
    To = resolve(Peer),
    Bin = payload(Size),
    Start = now_ns(),
    To ! {stream, self(), K},
    send_window(To, Bin, M, W, 0, 0),
    {ok, [now_ns() - Start]}.

send_window(_To, _Bin, M, _W, M, M) ->
    done;
send_window(To, Bin, M, W, Sent, Acked) when Sent < M, Sent - Acked < W ->
    To ! {data, Bin},
    send_window(To, Bin, M, W, Sent + 1, Acked);
send_window(To, Bin, M, W, Sent, _Acked) ->
    receive
        {ack, Count} -> send_window(To, Bin, M, W, Sent, Count)
    after ?TIMEOUT -> exit(ack_timeout)
    end.
