#!/usr/bin/python3
"""tests/helm/test_render.py: unit checks of hack/helm-render, the Helm template subset.

Every construct of the subset with the output Go text/template, Sprig and Helm give for it
(trim markers, comments, if/else if/with/range/define/include/template, variables and their
scopes, fields, missing keys, truth, pipelines, each function with its argument type checks,
printf verbs, toYaml's goyaml.v2 output, values as Helm reads them: float64 numbers, --set
typing, coalescing), the output assembly (split, sort by kind, "# Source:" headers, CRDs,
show-only) and the refusals of what is outside the subset, each naming file:line.
Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed`; exit 1 on any failure.
"""
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
_loader = importlib.machinery.SourceFileLoader("helm_render", os.path.join(ROOT, "hack", "helm-render"))
_spec = importlib.util.spec_from_loader("helm_render", _loader)
hr = importlib.util.module_from_spec(_spec)
_loader.exec_module(hr)
sys.path.insert(0, HERE)
from tap import finish, report  # noqa: E402


def render(tpl, values=None, **kw):
    try:
        return hr.render_string(tpl, values, **kw)
    except hr.RenderError as e:
        return "ERROR: %s" % e


def out(name, tpl, want, values=None, **kw):
    got = render(tpl, values, **kw)
    report(name, got == want, "template: %r\nwant: %r\ngot:  %r" % (tpl, want, got))


def err(name, tpl, *parts, values=None, **kw):
    """The render fails and the message holds every part (e.g. the location)."""
    got = render(tpl, values, **kw)
    ok = got.startswith("ERROR: ") and all(p in got for p in parts)
    report(name, ok, "template: %r\nwant an error with: %r\ngot: %r" % (tpl, parts, got))


LOC = "test/templates/t.yaml:"


def test_text_and_trim():
    out("plain text passes through", "a: b\n  c\n", "a: b\n  c\n")
    out("{{- trims spaces, tabs and newlines before", "a \t\n\n  {{- 1 }}", "a1")
    out("-}} trims them after", "{{ 1 -}} \n\t b", "1b")
    out("both markers", "x\n  {{- 1 -}}\n  y", "x1y")
    out("{{-3}} is the number -3, not a trim marker", "a {{-3}} b", "a -3 b")
    out("a marker needs its space: {{ 3-}} is an error", "{{ 3-}}", "ERROR: parse error at (test/templates/t.yaml:1): bad number syntax: '-}'")
    out("comment is dropped", "a{{/* x\ny */}}b", "ab")
    out("comment with trim markers", "a \n{{- /* x */ -}}\n b", "ab")
    err("comment must end at the delimiter", "{{/* x */ 1}}", "comment ends before closing delimiter", LOC + "1")
    err("unclosed comment", "{{/* x ", "unclosed comment")
    err("unclosed action", "a {{ .Values", "unclosed action")
    out("newlines inside an action", "{{ print\n 1\n 2 }}", "1 2")


def test_control():
    v = {"t": True, "f": False, "l": ["a", "b"], "m": {"b": 2, "a": 1, "c": None}, "e": {}, "s": "x"}
    out("if true", "{{ if .Values.t }}y{{ end }}", "y", v)
    out("if/else", "{{ if .Values.f }}y{{ else }}n{{ end }}", "n", v)
    out("else if chain", "{{ if .Values.f }}1{{ else if .Values.e }}2{{ else if .Values.s }}3{{ else }}4{{ end }}", "3", v)
    out("with sets dot", "{{ with .Values.m }}{{ .a }}{{ end }}", "1", v)
    out("with/else on empty", "{{ with .Values.e }}y{{ else }}{{ .Values.s }}{{ end }}", "x", v)
    out("range over a list", "{{ range .Values.l }}[{{ . }}]{{ end }}", "[a][b]", v)
    out("range $i, $v", "{{ range $i, $v := .Values.l }}{{ $i }}{{ $v }}{{ end }}", "0a1b", v)
    out("range $v (one variable: the element)", "{{ range $v := .Values.l }}{{ $v }}{{ end }}", "ab", v)
    out("range over a map: sorted keys", "{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", "a=1;b=2;c=<no value>;", v)
    out("range else on empty", "{{ range .Values.e }}x{{ else }}none{{ end }}", "none", v)
    out("range over a missing key runs else", "{{ range .Values.nope }}x{{ else }}none{{ end }}", "none", v)
    out("$ is the root inside range", "{{ range .Values.l }}{{ $.Values.s }}{{ end }}", "xx", v)
    err("range over a string is refused", "{{ range .Values.s }}{{ end }}", "range over string", "outside the subset", values=v)
    err("range over an integer is refused", "{{ range 3 }}{{ end }}", "range over int", "outside the subset")
    err("unexpected end", "{{ end }}", "unexpected {{end}}", LOC + "1")
    err("missing end", "{{ if 1 }}x", "unexpected EOF")
    err("if without a value", "{{ if }}x{{ end }}", "missing value for if")
    err("empty action", "{{ }}", "missing value for command")


def test_define_include_template():
    d = '{{- define "p" -}}[{{ . }}]{{- end }}{{ define "n" }}{{ include "p" .x }}{{ end }}'
    out("include returns the template's text", d + '{{ include "p" "a" }}', "[a]")
    out("include nests; $ inside is the passed data", d + '{{ include "n" (dict "x" 5) }}', "[5]")
    out("template action writes the text", d + '{{ template "p" "b" }}', "[b]")
    out("template without data: dot is nil", '{{ define "z" }}<{{ . }}>{{ end }}{{ template "z" }}', "<<no value>>")
    out("include | nindent", d + '{{ include "p" 1 | nindent 2 }}', "\n  [1]")
    out("defines from another file", '{{ include "h" . }}', "H", defines={"test/templates/_h.tpl": '{{ define "h" }}H{{ end }}'})
    err("no such template", '{{ include "nope" . }}', 'no such template', LOC + "1")
    err("recursion is bounded", '{{ define "r" }}{{ include "r" . }}{{ end }}{{ include "r" . }}', "maximum template depth")
    err("define inside an action body is refused", '{{ if 1 }}{{ define "x" }}{{ end }}{{ end }}', "only at the top level")
    err("a define repeated in two files is refused", '{{ define "h" }}2{{ end }}', "defined again",
        defines={"test/templates/_h.tpl": '{{ define "h" }}H{{ end }}'})


def test_variables():
    out("declare and use", "{{ $x := 3 }}{{ $x }}", "3")
    out("assign in a branch reaches outside", "{{ $x := 1 }}{{ if 1 }}{{ $x = 2 }}{{ end }}{{ $x }}", "2")
    err("a variable declared in a branch ends with it", "{{ if 1 }}{{ $y := 1 }}{{ end }}{{ $y }}", "undefined variable", LOC + "1")
    out("variables in range bodies are fresh each time", "{{ range .Values.l }}{{ $z := . }}{{ $z }}{{ end }}", "ab", {"l": ["a", "b"]})
    out("a declaration prints nothing", "{{ $x := 5 }}", "")
    err("undefined variable", "{{ $nope }}", "undefined variable", LOC + "1")


def test_fields_and_missing():
    v = {"a": {"b": "c"}, "n": None, "zero": 0}
    out("nested field", "{{ .Values.a.b }}", "c", v)
    out("missing key prints <no value> (Helm removes it from the file)", "{{ .Values.nope }}", "<no value>", v)
    out("null value prints <no value> too", "{{ .Values.n }}", "<no value>", v)
    err("field of a missing key: nil pointer", "{{ .Values.nope.x }}", "nil pointer evaluating interface {}.x", LOC + "1:3", values=v)
    out("field of a nil variable is nil (missingkey=zero)", "{{ $v := .Values.nope }}{{ $v.x }}", "<no value>", v)
    err("field of a string", "{{ .Values.a.b.c }}", "can't evaluate field c in type string", values=v)
    out(".Release fields", "{{ .Release.Name }}/{{ .Release.Namespace }}/{{ .Release.Service }}/{{ .Release.IsInstall }}/{{ .Release.Revision }}", "rel/ns/Helm/true/1")
    out(".Chart is a struct", "{{ .Chart.Name }}-{{ .Chart.Version }}-{{ .Chart.AppVersion }}", "test-0.1.0-1.0")
    err(".Chart has no other fields", "{{ .Chart.Nope }}", "can't evaluate field Nope in type *chart.Metadata")
    out(".Template.Name", "{{ .Template.Name }}", "test/templates/t.yaml")
    err("a map field given arguments", '{{ .Values.a "x" }}', "a is not a method but has arguments", values=v)
    out("chain on a parenthesized pipeline", '{{ (dict "k" "v").k }}', "v")
    err(".Files methods other than Get are refused", '{{ .Files.Glob "x" }}', ".Files.Glob", "outside the subset", LOC + "1")
    err(".Files.Get with two arguments is an error", '{{ .Files.Get "a" "b" }}', "wrong number of args for Get: want 1 got 2")
    err(".Files.Get of a number is a type error", '{{ .Files.Get 1 }}', "expected string; found 1")
    err(".Capabilities is refused", "{{ .Capabilities.KubeVersion }}", "outside the subset")
    err("chartutil.Values methods are refused", "{{ .Values.AsMap }}", "outside the subset")
    err("printing a map is refused", "{{ .Values.a }}", "printing a map", "use toYaml", values=v)


def test_truth():
    cases = [(False, "n"), (True, "y"), (0, "n"), (1, "y"), (0.0, "n"), (0.5, "y"), ("", "n"),
             ("0", "y"), ({}, "n"), ({"a": 1}, "y"), ([], "n"), ([0], "y"), (None, "n")]
    for v, want in cases:
        out("if %r is %s" % (v, want == "y"), "{{ if .Values.v }}y{{ else }}n{{ end }}", want, {"v": v})
    out("missing key is false", "{{ if .Values.nope }}y{{ else }}n{{ end }}", "n")
    out("not", "{{ not .Values.nope }} {{ not 1 }}", "true false")
    out("and returns the first false argument, else the last", '{{ and 1 "" 2 }}|{{ and 1 2 }}', "|2")
    out("or returns the first true argument, else the last", '{{ or 0 "" "x" }}|{{ or 0 "" }}', "x|")
    out("and/or short-circuit", "{{ or 1 .Values.nope.x }}", "1")
    out("and with a piped final value", '{{ "z" | and 1 }}', "z")


def test_numbers():
    v = hr.load_values_text("i: 3\nbig: 1000000\nhalf: 0.5\nneg: -7\nexp: 1e3\nport: 8080\n", "v")
    out("values numbers are float64: integral ones print plainly", "{{ .Values.i }} {{ .Values.port }} {{ .Values.neg }}", "3 8080 -7", v, raw_values=True)
    out("float64 of a million prints 1e+06 (Go's %v)", "{{ .Values.big }}", "1e+06", v, raw_values=True)
    out("fractions", "{{ .Values.half }} {{ .Values.exp }}", "0.5 1000", v, raw_values=True)
    out("template constants", "{{ 3 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }}", "3 -2 1.5 1000")
    out("--set integers are int64 and print as such",
        "{{ .Values.x }}", "1000000", hr.parse_set("x=1000000", {}), raw_values=True)
    err("float64 to an int parameter", "{{ nindent .Values.i \"a\" }}", "wrong type for value; expected int; got float64", values=v, raw_values=True)
    out("int converts", "{{ nindent (int .Values.i) \"a\" }}", "\n   a", v, raw_values=True)
    err("eq of float64 and an integer constant", "{{ eq .Values.i 3 }}", "incompatible types for comparison", values=v, raw_values=True)
    out("eq of float64 and a float constant", "{{ eq .Values.i 3.0 }}", "true", v, raw_values=True)
    err("hex numbers are refused", "{{ 0x10 }}", "0x10", "outside the subset", LOC + "1")
    err("leading zeros are refused", "{{ 010 }}", "outside the subset")
    err("character constants are refused", "{{ 'a' }}", "character constant", "outside the subset")


def test_pipelines():
    out("the previous result is the last argument", '{{ "a" | printf "%s-%s" "b" }}', "b-a")
    out("parenthesized pipelines", '{{ printf "%s" (print 1 2) }}', "1 2")
    err("argument to a non-function", '{{ "a" | .Values.x }}', "x is not a method but has arguments", values={"x": 1})
    err("a constant cannot take arguments", '{{ "a" "b" }}', "can't give argument to non-function")
    err("a parenthesized pipeline given a piped value is refused (Go drops it)", '{{ "a" | (print "b") }}',
        "parenthesized pipeline", "outside the subset", LOC + "1")
    err("non executable command in a later stage", '{{ 1 | 2 }}', "non executable command in pipeline stage 2")
    err("unknown functions are refused at parse time", "{{ tpl \"x\" . }}", 'function "tpl" not defined', "outside the subset", LOC + "1")
    err("wrong number of arguments", '{{ quote | trunc 1 2 }}', "wrong number of args for trunc: want 2 got 3")
    err("nil is not a command", "{{ nil }}", "nil is not a command")
    err("a string constant to an int parameter", '{{ trunc "1" "abc" }}', "expected integer; found \"1\"")
    err("a number constant to a string parameter", "{{ trunc 1 2 }}", "expected string; found 2")
    err("no value to a string parameter", "{{ .Values.nope | trunc 1 }}", "invalid value; expected string")
    err("a nil interface to a string parameter", "{{ trunc 1 .Values.nope }}", "wrong type for value; expected string; got interface {}")


def test_functions():
    v = {"s": "abc", "l": [1, 2], "m": {"k": "v", "a-b": "x"}, "e": "", "z": 0, "f": False, "n": None}
    cases = [
        ("eq strings", '{{ eq "a" "a" }} {{ eq "a" "b" }}', "true false"),
        ("eq with several", '{{ eq "c" "a" "b" "c" }}', "true"),
        ("eq nil with a value is false, not an error", '{{ eq .Values.nope "a" }}', "false"),
        ("ne lt le gt ge", "{{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 1 }}", "true true true false true"),
        ("lt on strings", '{{ lt "a" "b" }}', "true"),
        ("len of string (bytes), list, map", '{{ len .Values.s }} {{ len .Values.l }} {{ len .Values.m }} {{ len "é" }}', "3 2 2 2"),
        ("index of a map, a list, a missing key", '{{ index .Values.m "a-b" }} {{ index .Values.l 1 }} {{ index .Values.m "q" }}', "x 2 <no value>"),
        ("print spaces between non-strings", '{{ print 1 2 "a" 3 }}', "1 2a3"),
        ("printf verbs", '{{ printf "%s|%d|%v|%q|%t|%%" "a" 3 1.5 "q\\"" true }}', 'a|3|1.5|"q\\""|true|%'),
        ("default on missing, empty, zero, false", '{{ default "d" .Values.nope }} {{ default "d" .Values.e }} {{ default "d" .Values.z }} {{ default "d" .Values.f }}', "d d d d"),
        ("default keeps a value", '{{ .Values.s | default "d" }}', "abc"),
        ("empty", "{{ empty .Values.e }} {{ empty .Values.s }}", "true false"),
        ("coalesce", '{{ coalesce .Values.nope .Values.e "x" }}', "x"),
        ("ternary", '{{ ternary "y" "n" true }} {{ false | ternary "y" "n" }}', "y n"),
        ("quote escapes as Go's %q", '{{ quote "a\\"b\\\\c\\n" }}|{{ quote 1 "x" }}', '"a\\"b\\\\c\\n"|"1" "x"'),
        ("squote", '{{ squote "a" }}', "'a'"),
        ("indent and nindent", '{{ indent 2 "a\\nb" }}|{{ nindent 1 "a" }}', "  a\n  b|\n a"),
        ("trunc keeps or cuts bytes; negative from the end", '{{ trunc 2 "abc" }} {{ trunc 5 "abc" }} {{ trunc -2 "abc" }}', "ab abc bc"),
        ("trim trimPrefix trimSuffix", '[{{ trim " a \\n" }}] {{ trimPrefix "a" "abc" }} {{ trimSuffix "-" "ab-" }}', "[a] bc ab"),
        ("upper lower replace", '{{ upper "ab" }} {{ lower "AB" }} {{ replace "+" "_" "a+b+c" }}', "AB ab a_b_c"),
        ("contains hasPrefix hasSuffix", '{{ contains "b" "abc" }} {{ hasPrefix "a" "abc" }} {{ hasSuffix "a" "abc" }}', "true true false"),
        ("toString", "{{ toString 1 }} {{ toString .Values.s }} {{ 1.5 | toString }}", "1 abc 1.5"),
        ("int of strings, floats, bools", '{{ int "12" }} {{ int 2.7 }} {{ int true }} {{ int "x" }}', "12 2 1 0"),
        ("list and dict", '{{ toYaml (list 1 "a") }}|{{ toYaml (dict "b" 1 "a" 2) }}', "- 1\n- a|a: 2\nb: 1"),
        ("hasKey", '{{ hasKey .Values.m "k" }} {{ hasKey .Values.m "z" }}', "true false"),
        ("join", '{{ join "," .Values.l }}', "1,2"),
        ("required passes a value", '{{ required "need" .Values.s }}', "abc"),
        ("required passes 0 and false", '{{ required "need" .Values.z }} {{ required "need" .Values.f }}', "0 false"),
    ]
    for name, tpl, want in cases:
        out(name, tpl, want, v)
    err("required fails on a missing value", '{{ required "s is required" .Values.nope }}', "error calling required: s is required", LOC + "1", values=v)
    err("required fails on an empty string", '{{ required "need e" .Values.e }}', "need e", values=v)
    err("fail", '{{ fail "stop here" }}', "error calling fail: stop here", LOC + "1")
    err("quote of no value is refused (Sprig releases differ)", "{{ quote .Values.nope }}", "quote of no value",
        "outside the subset", LOC + "1")
    err("index out of range", "{{ index .Values.l 5 }}", "index out of range: 5", values=v)
    err("index with a float from values", "{{ index .Values.l .Values.i }}", "cannot index slice/array with type float64", values={"l": [1], "i": 0.0}, raw_values=True)
    err("printf with widths is refused", '{{ printf "%5d" 1 }}', "outside the subset")
    err("printf %d of a float64 is refused (Go prints %!d(float64=...))", '{{ printf "%d" 1.5 }}', "outside the subset")
    err("printf with a missing argument is refused", '{{ printf "%s %s" "a" }}', "missing argument")
    err("printf with an extra argument is refused", '{{ printf "%s" "a" "b" }}', "extra argument")
    err("hasKey of a non-map", '{{ hasKey .Values.s "k" }}', "wrong type for value; expected map[string]interface {}; got string", values=v)
    err("lt of bools", "{{ lt true false }}", "invalid type for comparison")


def test_to_yaml():
    def y(name, value, want):
        out(name, "{{ toYaml .Values.v }}", want, {"v": value}, raw_values=True)
    y("maps: keys sorted, nested, empty", {"b": 1, "a": {"d": {}, "c": []}}, "a:\n  c: []\n  d: {}\nb: 1")
    y("key order is goyaml.v2's: digit runs numerically", {"a10": 1, "a9": 2, "a": 3}, "a: 3\na9: 2\na10: 1")
    y("key order: a letter sorts after other characters", {"Ab": 1, "_b": 2, "a.b": 3, "a/b": 4, "ab": 5},
      "_b: 2\nAb: 1\na.b: 3\na/b: 4\nab: 5")
    y("sequences are not indented under their key", {"l": [{"k": 1, "a": [1]}, "x"]},
      "l:\n- a:\n  - 1\n  k: 1\n- x")
    y("strings that read as other types are double-quoted",
      ["true", "yes", "on", "y", "N", "~", "null", "", "1", "1.5", "-3", "0x1F", "1_000", "1:20",
       "2001-12-14", ".5", "1e3", "<<", ".inf"],
      '- "true"\n- "yes"\n- "on"\n- "y"\n- "N"\n- "~"\n- "null"\n- ""\n- "1"\n- "1.5"\n- "-3"\n'
      '- "0x1F"\n- "1_000"\n- "1:20"\n- "2001-12-14"\n- ".5"\n- "1e3"\n- "<<"\n- ".inf"')
    y("other strings stay plain or take single quotes where plain cannot be read back",
      ["a b", "x:y", "a: b", "- a", "#x", "a #b", " lead", "*x", "1.2.3", "v1", "@a"],
      "- a b\n- x:y\n- 'a: b'\n- '- a'\n- '#x'\n- 'a #b'\n- ' lead'\n- '*x'\n- 1.2.3\n- v1\n- '@a'")
    y("multi-line strings are literal blocks", {"s": "a\nb\n", "t": "a\nb"}, "s: |\n  a\n  b\nt: |-\n  a\n  b")
    y("integral floats (JSON) become integers; others stay floats",
      {"a": 3.0, "b": 1000000.0, "c": 0.5, "d": 1234567.5, "e": -0.0},
      "a: 3\nb: 1000000\nc: 0.5\nd: 1.2345675e+06\ne: 0")
    y("bools and null; the key n reads as a bool, so it is quoted", {"t": True, "f": False, "n": None},
      'f: false\n"n": null\nt: true')
    y("long strings fold at 80 columns", {"k": " ".join(["word"] * 30)},
      "k: word word word word word word word word word word word word word word word word\n"
      "  word word word word word word word word word word word word word word")
    y("unicode stays as it is", {"k": "etcd 集群没有 Leader"}, "k: etcd 集群没有 Leader")
    out("toYaml of nil", "{{ toYaml .Values.nope }}", "null")
    err("toYaml of a scalar is refused", "{{ toYaml .Values.s }}", "toYaml of a scalar", "outside the subset", LOC + "1", values={"s": "x"})
    err("toYaml of a string beyond U+FFFF is refused", "{{ toYaml .Values.m }}", "beyond U+FFFF", values={"m": {"k": "\U0001F600"}})


def test_refusals():
    err("block", '{{ block "x" . }}{{ end }}', "{{block}}", "outside the subset", LOC + "1")
    err("break", "{{ range .Values.l }}{{ break }}{{ end }}", "{{break}}", "outside the subset", values={"l": [1]})
    err("continue", "{{ range .Values.l }}{{ continue }}{{ end }}", "{{continue}}", "outside the subset", values={"l": [1]})
    err("else with", "{{ with 1 }}{{ else with 2 }}{{ end }}", "else with", "outside the subset")
    err("lookup", '{{ lookup "v1" "Pod" "" "" }}', 'function "lookup" not defined')
    err("toJson", "{{ toJson . }}", 'function "toJson" not defined')
    err("the location is the line of the construct", "a\nb\n{{ semverCompare \">1\" \"2\" }}", LOC + "3")


def test_values():
    d = hr.load_values_text("a: {b: 1, c: {d: 2}}\nl: [1]\nx: keep\nt: 2001-12-14\nTrue: FALSE\ne: 1.5e3\n", "v")
    report("values: numbers float64, timestamps strings, true/false in any case, a bool key is a string",
           d == {"a": {"b": 1.0, "c": {"d": 2.0}}, "l": [1.0], "x": "keep", "t": "2001-12-14", "true": False,
                 "e": 1500.0}, repr(d))
    for text, what in (("a: 1\nb:\n  yes: 1\n", "v.yaml:3: the YAML 1.1 boolean yes"),
                       ("a: off\n", "v.yaml:1: the YAML 1.1 boolean off"),
                       ("a: 1\na: 2\n", "v.yaml:2: the duplicate key 'a'"),
                       ("a: 1:20\n", "v.yaml:1: the base-60 number 1:20"),
                       ("a: !!binary aGk=\n", "v.yaml:1: the explicit tag tag:yaml.org,2002:binary")):
        try:
            hr.load_values_text(text, "v.yaml")
            report("values: %s is refused" % what, False, "loaded")
        except hr.RenderError as e:
            report("values: %s is refused" % what, what in str(e) and "outside the subset" in str(e), str(e))
    u = hr.load_values_text("a: {c: {e: 3}}\nx: null\nl: [2]\n", "u")
    c = hr.coalesce(u, d)
    report("coalesce: maps merge deeply, lists replace, null deletes a default",
           c == {"a": {"b": 1.0, "c": {"d": 2.0, "e": 3.0}}, "l": [2.0], "t": "2001-12-14", "true": False,
                 "e": 1500.0}, repr(c))
    m = hr.merge_maps({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4})
    report("several --values files: later ones win, maps merge", m == {"a": {"b": 1, "c": 3}, "d": 4}, repr(m))
    s = hr.parse_set("a.b=1,c=true,d=null,e=01,f=x\\,y,g.h\\.i=2.5", {})
    ok = (s == {"a": {"b": 1}, "c": True, "d": None, "e": "01", "f": "x,y", "g": {"h.i": "2.5"}}
          and type(s["a"]["b"]) is hr.GoInt64)
    report("--set: int64, bool, null, strings, escapes", ok, repr(s))
    try:
        hr.parse_set("a[0]=1", {})
        report("--set lists are refused", False, "no error")
    except hr.RenderError as e:
        report("--set lists are refused", "outside the subset" in str(e), str(e))


def write_chart(files):
    d = tempfile.mkdtemp(prefix="helm-render-test.")
    for rel, text in files.items():
        p = os.path.join(d, "c", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return d


def test_chart_output():
    chart = {
        "Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.2.0\nappVersion: \"1\"\n",
        "values.yaml": "num: 1\nshow: true\n",
        "crds/x.yaml": "kind: CustomResourceDefinition\nmetadata: {name: x}\n",
        "templates/_h.tpl": '{{ define "h" }}H{{ end }}',
        "templates/b.yaml": "kind: Deployment\nmetadata:\n  name: d\n---\n# just a comment\n---\n\n---\nkind: Zeta\nmetadata: {name: z}\n",
        "templates/a.yaml": "{{ if .Values.show }}kind: Service\nmetadata:\n  name: {{ include \"h\" . }}-{{ .Values.nope }}x\n{{ end }}",
        "templates/c.yaml": "kind: Alpha\nmetadata: {name: a}\n",
        "templates/empty.yaml": "{{ if false }}kind: X{{ end }}\n",
        "templates/NOTES.txt": "release {{ .Release.Name }}",
    }
    d = write_chart(chart)
    try:
        got = hr.render_chart(os.path.join(d, "c"), release="r1", namespace="ns1", include_crds=True, notes=True)
        want = ("---\n# Source: c/crds/x.yaml\nkind: CustomResourceDefinition\nmetadata: {name: x}\n\n"
                "---\n# Source: c/templates/a.yaml\nkind: Service\nmetadata:\n  name: H-x\n"
                "---\n# Source: c/templates/b.yaml\nkind: Deployment\nmetadata:\n  name: d\n"
                "---\n# Source: c/templates/b.yaml\n# just a comment\n"
                "---\n# Source: c/templates/c.yaml\nkind: Alpha\nmetadata: {name: a}\n"
                "---\n# Source: c/templates/b.yaml\n---\nkind: Zeta\nmetadata: {name: z}\n"
                "\nNOTES:\nrelease r1\n")
        report("chart: CRDs first, kinds in install order, unknown kinds by name (a comment-only "
               "document has kind \"\"), <no value> removed, Helm's split (the --- after an empty "
               "document stays in the next one), NOTES", got == want, "want:\n%s\ngot:\n%s" % (want, got))
        got = hr.render_chart(os.path.join(d, "c"), show_only=["templates/c.yaml"])
        report("--show-only", got == "---\n# Source: c/templates/c.yaml\nkind: Alpha\nmetadata: {name: a}\n", got)
        got = hr.render_chart(os.path.join(d, "c"), sets=["show=false"])
        report("--set reaches the templates", "Service" not in got, got)
        with open(os.path.join(d, "c", "templates", "bad.yaml"), "w") as f:
            f.write("a: [\n")
        try:
            hr.render_chart(os.path.join(d, "c"))
            report("invalid YAML output names its file", False, "no error")
        except hr.RenderError as e:
            report("invalid YAML output names its file", "YAML parse error on c/templates/bad.yaml" in str(e), str(e))
        with open(os.path.join(d, "c", "templates", "bad.yaml"), "w") as f:
            f.write("kind: Job\nmetadata:\n  annotations:\n    helm.sh/hook: pre-install\n")
        try:
            hr.render_chart(os.path.join(d, "c"))
            report("hooks are refused", False, "no error")
        except hr.RenderError as e:
            report("hooks are refused", "outside the subset" in str(e), str(e))
    finally:
        shutil.rmtree(d)


def test_files():
    d = tempfile.mkdtemp(prefix="helm-render-test.")
    try:
        p = os.path.join(d, "x.json")
        with open(p, "w") as f:
            f.write('{"a": 1}\n')
        files = {"dash/x.json": p}
        out(".Files.Get reads a chart file", '{{ .Files.Get "dash/x.json" }}', '{"a": 1}\n', files=files)
        out(".Files.Get of a path from values, piped on", '{{ .Files.Get .Values.f | trim | nindent 2 }}',
            '\n  {"a": 1}', {"f": "dash/x.json"}, files=files)
        out(".Files.Get as the last command of a pipeline", '{{ "dash/x.json" | .Files.Get | trim }}', '{"a": 1}',
            files=files)
        out(".Files.Get of a missing path is empty (Helm's)", '[{{ .Files.Get "nope.json" }}]', "[]", files=files)
        out("if .Files: a map's truth (the chart has files)", "{{ if .Files }}y{{ end }}", "y",
            files=files)
    finally:
        shutil.rmtree(d)
    chart = {
        "Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.2.0\n",
        "values.yaml": "a: 1\n",
        "files/d.json": '{"k": "v"}\n',
        "templates/cm.yaml": ("kind: ConfigMap\nmetadata: {name: m}\ndata:\n  d.json: |-\n"
                              '    {{- .Files.Get "files/d.json" | trim | nindent 4 }}\n'
                              '  tpl: "{{ .Files.Get "templates/cm.yaml" | len }}"\n'
                              '  values: "{{ .Files.Get "values.yaml" | len }}"\n'),
    }
    d = write_chart(chart)
    try:
        got = hr.render_chart(os.path.join(d, "c"))
        want = ("---\n# Source: c/templates/cm.yaml\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n"
                '  d.json: |-\n    {"k": "v"}\n  tpl: "0"\n  values: "0"\n')
        report("chart: .Files.Get reads files/, not templates/ nor values.yaml (Helm's loader)", got == want,
               "want:\n%s\ngot:\n%s" % (want, got))
        with open(os.path.join(d, "c", ".helmignore"), "w") as f:
            f.write("*.tmp\n")
        try:
            hr.render_chart(os.path.join(d, "c"))
            report("a chart with .helmignore is refused", False, "no error")
        except hr.RenderError as e:
            report("a chart with .helmignore is refused", "outside the subset" in str(e), str(e))
    finally:
        shutil.rmtree(d)


def test_go_float():
    cases = [(3.0, "3"), (100000.0, "100000"), (1e6, "1e+06"), (123456789.0, "1.23456789e+08"),
             (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (1.5e300, "1.5e+300"), (0.0, "0")]
    got = [(f, hr.go_float(f)) for f, _ in cases]
    report("Go's %v of float64", got == cases, repr(got))


for t in [test_text_and_trim, test_control, test_define_include_template, test_variables,
          test_fields_and_missing, test_truth, test_numbers, test_pipelines, test_functions,
          test_to_yaml, test_refusals, test_values, test_chart_output, test_files, test_go_float]:
    t()

finish()
