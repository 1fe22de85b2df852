#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% Does Erlang read vdist's text of a term back as the same term? The C++ side (term_cli_test)
%% prints every golden vector with `vdist term print` and drives this script:
%%
%%   escript text_check.escript <EtfDir> <PrintedFile>
%%
%% PrintedFile is UTF-8, one line per term: "<name> <text>", where <text> is what vdist printed
%% for the external term in <EtfDir>/<name>.etf. For every term that has Erlang literal syntax
%% (no pid, port, reference or local fun anywhere inside it) the script checks
%%
%%   {ok, Tokens, _} = erl_scan:string(Text ++ "."),
%%   {ok, Parsed} = erl_parse:parse_term(Tokens),
%%   Parsed =:= binary_to_term(Etf)
%%
%% and also that both encode to the same minimal bytes, because OTP 25's =:= does not tell -0.0
%% from 0.0. Terms without literal syntax are counted as skipped (vdist prints them in its own
%% #Pid<...> notation, which Erlang cannot read). It prints up to 5 failures, then
%%
%%   TEXT_CHECK lines=L checked=C equal=E skipped=S failures=F
%%
%% and exits 0 iff F is 0 and C is at least 1. A usage error or an unreadable file gives 2.
-mode(compile).

-define(MINIMAL, [{minor_version, 2}]).
-define(FAILURES_SHOWN, 5).

main([EtfDir, PrintedFile]) ->
    try check(EtfDir, PrintedFile) of
        ok -> halt(0);
        failed -> halt(1)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "text_check.escript: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(2)
    end;
main(_) ->
    io:format(standard_error, "usage: text_check.escript <EtfDir> <PrintedFile>~n", []),
    halt(2).

check(EtfDir, PrintedFile) ->
    {ok, Printed} = file:read_file(PrintedFile),
    Lines = [Line || Line <- binary:split(Printed, <<"\n">>, [global]), Line =/= <<>>],
    Results = [check_line(EtfDir, Line) || Line <- Lines],
    Failures = [F || {failed, _, _} = F <- Results],
    [io:format("FAIL ~ts: ~ts~n", [Name, Why])
     || {failed, Name, Why} <- lists:sublist(Failures, ?FAILURES_SHOWN)],
    Checked = length([ok || equal <- Results]) + length(Failures),
    io:format("TEXT_CHECK lines=~b checked=~b equal=~b skipped=~b failures=~b~n",
              [length(Lines), Checked, length([ok || equal <- Results]),
               length([ok || skipped <- Results]), length(Failures)]),
    case Failures =:= [] andalso Checked > 0 of
        true -> ok;
        false -> failed
    end.

check_line(EtfDir, Line) ->
    [Name, Text] = binary:split(Line, <<" ">>),
    {ok, Etf} = file:read_file(filename:join(EtfDir, <<Name/binary, ".etf">>)),
    Term = binary_to_term(Etf),
    case has_literal_syntax(Term) of
        false -> skipped;
        true -> compare(Name, Text, Term)
    end.

compare(Name, Text, Term) ->
    case parse(Text) of
        {ok, Parsed} when Parsed =:= Term ->
            case term_to_binary(Parsed, ?MINIMAL) =:= term_to_binary(Term, ?MINIMAL) of
                true -> equal;
                false -> {failed, Name, "=:= but encodes differently (-0.0 against 0.0?)"}
            end;
        {ok, Parsed} ->
            {failed, Name, io_lib:format("read back as ~P, not ~P", [Parsed, 12, Term, 12])};
        {error, Why} ->
            {failed, Name, io_lib:format("Erlang cannot read the text: ~tp", [Why])}
    end.

parse(Text) ->
    case unicode:characters_to_list(Text, utf8) of
        Chars when is_list(Chars) ->
            case erl_scan:string(Chars ++ ".") of
                {ok, Tokens, _} -> erl_parse:parse_term(Tokens);
                {error, Info, _} -> {error, {scan, Info}}
            end;
        _ -> {error, not_utf8}
    end.

%% Whether the term is made only of what Erlang can write as a literal.
has_literal_syntax(T) when is_pid(T); is_port(T); is_reference(T) -> false;
has_literal_syntax(T) when is_function(T) -> erlang:fun_info(T, type) =:= {type, external};
has_literal_syntax([H | T]) -> has_literal_syntax(H) andalso has_literal_syntax(T);
has_literal_syntax(T) when is_tuple(T) -> has_literal_syntax(tuple_to_list(T));
has_literal_syntax(T) when is_map(T) ->
    has_literal_syntax(maps:keys(T)) andalso has_literal_syntax(maps:values(T));
has_literal_syntax(_) -> true.
