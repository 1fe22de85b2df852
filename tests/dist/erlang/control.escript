#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% The control messages of tests/dist/control_cases.hpp, built by a real Erlang: for each case
%% the pass-through payload OTP's own encoder gives,
%%
%%   112, term_to_binary(Ctrl, [{minor_version, 2}]), [term_to_binary(Msg, ...)]
%%
%% printed as one line "CASE <name> <hex>" (or "CASE <name> -" when nothing is sent: an
%% UNLINK_ID_ACK to a peer without DFLAG_UNLINK_ID). Cases named "<base>__tt" are the
%% trace-token form of case <base>; vdist only reads those (control_erlang_test.cpp).
%%
%% The values (pids, reference, message) must be those of control_cases.hpp. Pids and the
%% reference are made from hand-written NEW_PID_EXT / NEWER_REFERENCE_EXT: they belong to
%% nodes this escript is not.
-mode(compile).

main([]) ->
    Local = pid(<<"vdist@127.0.0.1">>, 1, 0, 3),
    Remote = pid(<<"e1@127.0.0.1">>, 9, 0, 16#6b090cf3),
    Spawned = pid(<<"vdist@127.0.0.1">>, 77, 1, 3),
    Ref = ref(<<"e1@127.0.0.1">>, 16#6b090cf3, [16#1234, 16#56789, 16#9abcdef0]),
    Msg = {hello, 42},
    Token = {0, label, 0, Local, 0},
    Cases =
        [{link, {1, Local, Remote}},
         {send, {2, '', Remote}, Msg},
         {send_with_sender_not_negotiated, {2, '', Remote}, Msg},
         {send_sender, {22, Local, Remote}, Msg},
         {send_sender_negotiated_without_from, {2, '', Remote}, Msg},
         {reg_send, {6, Local, '', net_kernel}, Msg},
         {exit, {3, Local, Remote, normal}},
         {exit2, {8, Local, Remote, normal}},
         {payload_exit, {24, Local, Remote}, normal},
         {payload_exit2, {26, Local, Remote}, normal},
         {unlink_id, {35, 7, Local, Remote}},
         {unlink_id_ack, {36, 300, Local, Remote}},
         {unlink_id_largest, {35, 16#ffffffffffffffff, Local, Remote}},
         {unlink_id_beyond_int64, {35, 1 bsl 63, Local, Remote}},
         {unlink_old, {4, Local, Remote}},
         {unlink_ack_old, nothing},
         {monitor_p, {19, Local, Remote, Ref}},
         {monitor_p_name, {19, Local, net_kernel, Ref}},
         {demonitor_p, {20, Local, Remote, Ref}},
         {monitor_p_exit, {21, Local, Remote, Ref, noproc}},
         {monitor_p_exit_name, {21, net_kernel, Remote, Ref, noproc}},
         {payload_monitor_p_exit, {28, Local, Remote, Ref}, noproc},
         {group_leader, {7, Local, Remote}},
         {spawn_request, {29, Ref, Local, Remote, {lists, seq, 2}, [link, monitor]}, [1, 3]},
         {spawn_request_no_options, {29, Ref, Local, Remote, {lists, seq, 2}, []}, [1, <<"x">>]},
         {spawn_reply, {31, Ref, Remote, 3, Spawned}},
         {spawn_reply_error, {31, Ref, Remote, 0, badarg}},
         {alias_send, {33, Local, Ref}, Msg},
         %% Trace-token forms, read only.
         {send__tt, {12, '', Remote, Token}, Msg},
         {exit__tt, {13, Local, Remote, Token, normal}},
         {reg_send__tt, {16, Local, '', net_kernel, Token}, Msg},
         {exit2__tt, {18, Local, Remote, Token, normal}},
         {send_sender__tt, {23, Local, Remote, Token}, Msg},
         {payload_exit__tt, {25, Local, Remote, Token}, normal},
         {payload_exit2__tt, {27, Local, Remote, Token}, normal},
         {spawn_request__tt, {30, Ref, Local, Remote, {lists, seq, 2}, [link, monitor], Token},
          [1, 3]},
         {spawn_reply__tt, {32, Ref, Remote, 3, Spawned, Token}},
         {alias_send__tt, {34, Local, Ref, Token}, Msg}],
    lists:foreach(fun print/1, Cases),
    halt(0).

print({Name, nothing}) ->
    io:format("CASE ~s -~n", [Name]);
print({Name, Ctrl}) ->
    io:format("CASE ~s ~s~n", [Name, hex(<<112, (t2b(Ctrl))/binary>>)]);
print({Name, Ctrl, Msg}) ->
    io:format("CASE ~s ~s~n", [Name, hex(<<112, (t2b(Ctrl))/binary, (t2b(Msg))/binary>>)]).

t2b(Term) ->
    term_to_binary(Term, [{minor_version, 2}]).

hex(Bin) ->
    [io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin].

pid(Node, Id, Serial, Creation) ->
    binary_to_term(<<131, 88, 119, (byte_size(Node)), Node/binary, Id:32, Serial:32,
                     Creation:32>>).

ref(Node, Creation, Words) ->
    binary_to_term(<<131, 90, (length(Words)):16, 119, (byte_size(Node)), Node/binary,
                     Creation:32, (<< <<W:32>> || W <- Words >>)/binary>>).
