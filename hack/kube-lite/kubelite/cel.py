"""A small, strict subset of CEL (Common Expression Language) for CRD x-kubernetes-validations.

Purpose: compile and evaluate the validation rules of a CustomResourceDefinition the way the
Kubernetes API server does (cel-go with Kubernetes' environment), for the part of the language
rules are usually written in. A rule that uses anything outside this subset is refused at
compile() time (CelError), so kube-lite never silently skips or misjudges a rule: the API
server then refuses the CRD with 422 naming the rule.

The subset:
  literals   int (decimal, 0x hex), uint (1u), double (1.5, 1e3), string ('..', "..", '''..''',
             r'..' raw; escapes \\n \\t \\xHH \\uHHHH \\UHHHHHHHH \\ooo ...), bool, null,
             lists [a, b], maps {k: v}
  variables  self, oldSelf (transition rules), and macro variables
  access     e.f (a map key; an absent key is the runtime error "no such key: f"), e[i] (list
             index, map key), has(e.f)
  operators  + - * / % (int and uint overflow and division by zero are errors; int division
             truncates toward zero, % takes the sign of the dividend), == != (heterogeneous:
             1 == 1.0 is true, values of different kinds are unequal), < <= > >= (numbers across
             int/uint/double, strings, bools), && || (commutative with errors, as in CEL:
             `false && <error>` is false), !, unary -, e ? a : b, `in` (list membership, map key)
  functions  size(x) and x.size() (string code points, list, map), s.startsWith(p),
             s.endsWith(p), s.contains(p), s.matches(re) and matches(s, re) (re unanchored,
             Python re standing in for RE2), s.lowerAscii(), s.upperAscii(), int(), uint(),
             double(), string(), dyn()
  macros     l.all(x, p), l.exists(x, p), l.exists_one(x, p), l.map(x, t), l.map(x, p, t),
             l.filter(x, p) (over a map: its keys)
Not in the subset (refused when compiling): bytes literals, message construction, timestamps
and durations, optionals, other functions and extension libraries, comprehension macros other
than the above. There is no static type checker: a type error (1 + 'a') is found when the rule
runs and reported as cel-go reports a runtime overload error ("no such overload"); compile()
only refuses rules that certainly do not evaluate to a bool, undeclared variables and unknown
functions.

Value model (Python): int -> int, uint -> UInt, double -> float, string -> str, bool -> bool,
null -> None, list -> list, map -> dict. Invariants: evaluation never mutates its inputs;
every failure inside a rule raises EvalError (never another exception); integer results stay
within int64 (uint within uint64).
"""
import math
import re

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
UINT_MAX = (1 << 64) - 1
MAX_DEPTH = 64


class CelError(Exception):
    """The rule does not parse, or uses something outside kube-lite's CEL subset."""


class EvalError(Exception):
    """A runtime error while evaluating a rule (message as cel-go words it)."""


class UInt:
    """A CEL uint value."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __eq__(self, o):
        return isinstance(o, UInt) and o.v == self.v

    def __hash__(self):
        return hash(("uint", self.v))

    def __repr__(self):
        return "%du" % self.v


def type_name(v):
    if v is None:
        return "null_type"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, UInt):
        return "uint"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _overload(*_):
    return EvalError("no such overload")


# ---------------------------------------------------------------- lexer

_TOKEN = re.compile(r"""
 (?P<ws>\s+|//[^\n]*)
|(?P<str>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
|(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?)
|(?P<id>[_a-zA-Z][_a-zA-Z0-9]*)
|(?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%?:.,()\[\]{}])
""", re.X)

_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
        "'": "'", '"': '"', "`": "`", "?": "?"}


def _unescape(body):
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise CelError("invalid escape at end of string")
        e = body[i + 1]
        if e in _ESC:
            out.append(_ESC[e])
            i += 2
        elif e in "xXuU":
            n = {"x": 2, "X": 2, "u": 4, "U": 8}[e]
            hexs = body[i + 2:i + 2 + n]
            if len(hexs) != n or not re.fullmatch(r"[0-9a-fA-F]+", hexs):
                raise CelError("invalid \\%s escape" % e)
            out.append(chr(int(hexs, 16)))
            i += 2 + n
        elif e in "0123":
            octs = body[i + 1:i + 4]
            if not re.fullmatch(r"[0-7]{3}", octs):
                raise CelError("invalid octal escape")
            out.append(chr(int(octs, 8)))
            i += 4
        else:
            raise CelError("invalid escape sequence \\%s" % e)
    return "".join(out)


def _string_literal(tok):
    prefix = ""
    while tok[0] in "rRbB":
        prefix += tok[0].lower()
        tok = tok[1:]
    if "b" in prefix:
        raise CelError("bytes literals are not in kube-lite's CEL subset")
    q = 3 if tok[:3] in ('"""', "'''") else 1
    body = tok[q:-q]
    return body if "r" in prefix else _unescape(body)


def _number_literal(tok):
    t = tok.lower()
    if t.endswith("u"):
        v = int(t[:-1], 0)
        if v > UINT_MAX:
            raise CelError("uint literal out of range: %s" % tok)
        return UInt(v)
    if t.startswith("0x"):
        v = int(t, 16)
    elif "." in t or "e" in t:
        return float(t)
    else:
        v = int(t)
    if v > INT_MAX + 1:     # INT_MAX + 1 is allowed only under a unary minus (checked there)
        raise CelError("int literal out of range: %s" % tok)
    return v


def tokenize(src):
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise CelError("Syntax error: token recognition error at: '%s'" % src[pos])
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        text = m.group(kind)
        if kind == "str":
            out.append(("lit", _string_literal(text), m.start()))
        elif kind == "num":
            out.append(("num", _number_literal(text), m.start()))
        elif kind == "id":
            if text in ("true", "false"):
                out.append(("lit", text == "true", m.start()))
            elif text == "null":
                out.append(("lit", None, m.start()))
            elif text == "in":
                out.append(("op", "in", m.start()))
            else:
                out.append(("id", text, m.start()))
        else:
            out.append(("op", text, m.start()))
    out.append(("end", None, len(src)))
    return out


# ---------------------------------------------------------------- parser
# AST nodes are tuples: ("lit", v) ("id", name) ("sel", e, f) ("has", e, f) ("idx", e, k)
# ("list", [e]) ("map", [(k, v)]) ("not", e) ("neg", e) ("bin", op, a, b) ("and", a, b)
# ("or", a, b) ("cond", c, a, b) ("call", name, target or None, [args])
# ("macro", name, target, var, e1, e2 or None)

MACROS = {"all": 2, "exists": 2, "exists_one": 2, "filter": 2, "map": (2, 3)}
GLOBALS = {"size": 1, "matches": 2, "int": 1, "uint": 1, "double": 1, "string": 1, "dyn": 1}
METHODS = {"size": 0, "startsWith": 1, "endsWith": 1, "contains": 1, "matches": 1,
           "lowerAscii": 0, "upperAscii": 0}


class _Parser:
    def __init__(self, src):
        self.toks = tokenize(src)
        self.i = 0
        self.depth = 0

    def peek(self, val=None):
        t = self.toks[self.i]
        if val is None:
            return t
        return t if t[0] in ("op",) and t[1] == val else None

    def take(self, val=None):
        t = self.toks[self.i]
        if val is not None and not (t[0] == "op" and t[1] == val):
            raise CelError("Syntax error: expected '%s' at column %d" % (val, t[2] + 1))
        self.i += 1
        return t

    def parse(self):
        e = self.expr()
        t = self.peek()
        if t[0] != "end":
            raise CelError("Syntax error: unexpected '%s' at column %d" % (t[1], t[2] + 1))
        return e

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CelError("expression nested too deeply")
        c = self.or_()
        if self.peek("?"):
            self.take("?")
            a = self.or_()
            self.take(":")
            b = self.expr()
            c = ("cond", c, a, b)
        self.depth -= 1
        return c

    def or_(self):
        e = self.and_()
        while self.peek("||"):
            self.take()
            e = ("or", e, self.and_())
        return e

    def and_(self):
        e = self.rel()
        while self.peek("&&"):
            self.take()
            e = ("and", e, self.rel())
        return e

    def rel(self):
        e = self.add()
        while True:
            t = self.peek()
            if t[0] == "op" and t[1] in ("<", "<=", ">", ">=", "==", "!=", "in"):
                self.take()
                e = ("bin", t[1], e, self.add())
            else:
                return e

    def add(self):
        e = self.mul()
        while True:
            t = self.peek()
            if t[0] == "op" and t[1] in ("+", "-"):
                self.take()
                e = ("bin", t[1], e, self.mul())
            else:
                return e

    def mul(self):
        e = self.unary()
        while True:
            t = self.peek()
            if t[0] == "op" and t[1] in ("*", "/", "%"):
                self.take()
                e = ("bin", t[1], e, self.unary())
            else:
                return e

    def unary(self):
        if self.peek("!"):
            self.take()
            return ("not", self.unary())
        if self.peek("-"):
            self.take()
            t = self.peek()
            if t[0] == "num" and isinstance(t[1], int) and not self._member_follows():
                self.take()
                return ("lit", -t[1])
            return ("neg", self.unary())
        return self.member()

    def _member_follows(self):
        nxt = self.toks[self.i + 1]
        return nxt[0] == "op" and nxt[1] in (".", "[")

    def member(self):
        e = self.primary()
        while True:
            if self.peek("."):
                self.take()
                t = self.take()
                if t[0] != "id":
                    raise CelError("Syntax error: expected a field name at column %d" % (t[2] + 1))
                if self.peek("("):
                    e = self.call(t[1], e, t[2])
                else:
                    e = ("sel", e, t[1])
            elif self.peek("["):
                self.take()
                k = self.expr()
                self.take("]")
                e = ("idx", e, k)
            else:
                return e

    def args(self):
        self.take("(")
        out = []
        if not self.peek(")"):
            out.append(self.expr())
            while self.peek(","):
                self.take()
                out.append(self.expr())
        self.take(")")
        return out

    def call(self, name, target, col):
        args = self.args()
        if target is not None and name in MACROS:
            want = MACROS[name]
            if len(args) not in (want if isinstance(want, tuple) else (want,)):
                raise CelError("macro %s takes %s arguments" % (name, want))
            if args[0][0] != "id":
                raise CelError("argument must be a simple name")
            return ("macro", name, target, args[0][1], args[1], args[2] if len(args) == 3 else None)
        if target is None and name == "has":
            if len(args) != 1 or args[0][0] != "sel":
                raise CelError("invalid argument to has() macro")
            return ("has", args[0][1], args[0][2])
        table = METHODS if target is not None else GLOBALS
        if name not in table:
            raise CelError("undeclared reference to '%s' (in container '') at column %d: "
                           "kube-lite's CEL subset has no such function" % (name, col + 1))
        if len(args) != table[name]:
            raise CelError("found no matching overload for '%s' applied to %d argument(s)"
                           % (name, len(args)))
        return ("call", name, target, args)

    def primary(self):
        t = self.take()
        kind, val = t[0], t[1]
        if kind in ("lit",):
            return ("lit", val)
        if kind == "num":
            if isinstance(val, int) and val > INT_MAX:
                raise CelError("int literal out of range")
            return ("lit", val)
        if kind == "id":
            if self.peek("("):
                return self.call(val, None, t[2])
            if self.peek("{"):
                raise CelError("message construction is not in kube-lite's CEL subset")
            return ("id", val)
        if kind == "op" and val == "(":
            e = self.expr()
            self.take(")")
            return e
        if kind == "op" and val == "[":
            items = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek(","):
                    break
                self.take()
            self.take("]")
            return ("list", items)
        if kind == "op" and val == "{":
            entries = []
            while not self.peek("}"):
                k = self.expr()
                self.take(":")
                entries.append((k, self.expr()))
                if not self.peek(","):
                    break
                self.take()
            self.take("}")
            return ("map", entries)
        if kind == "op" and val == ".":
            raise CelError("leading-dot names are not in kube-lite's CEL subset")
        if kind == "end":
            raise CelError("Syntax error: unexpected end of expression")
        raise CelError("Syntax error: unexpected '%s' at column %d" % (val, t[2] + 1))


# ---------------------------------------------------------------- compile

class Program:
    """A compiled rule: .source, .ast, .uses_old_self; .eval(self_value, old_value)."""

    def __init__(self, source, ast):
        self.source = source
        self.ast = ast
        self.uses_old_self = _uses(ast, "oldSelf", set())

    def eval(self, self_value, old_value=None):
        env = {"self": self_value}
        if self.uses_old_self:
            env["oldSelf"] = old_value
        return evaluate(self.ast, env)


def _children(node):
    kind = node[0]
    if kind in ("lit", "id"):
        return []
    if kind in ("sel", "has", "not", "neg"):
        return [node[1]]
    if kind == "idx":
        return [node[1], node[2]]
    if kind == "list":
        return list(node[1])
    if kind == "map":
        return [x for kv in node[1] for x in kv]
    if kind == "bin":
        return [node[2], node[3]]
    if kind in ("and", "or"):
        return [node[1], node[2]]
    if kind == "cond":
        return [node[1], node[2], node[3]]
    if kind == "call":
        return ([node[2]] if node[2] is not None else []) + list(node[3])
    if kind == "macro":
        return [node[2], node[4]] + ([node[5]] if node[5] is not None else [])
    return []


def _uses(node, name, bound):
    if node[0] == "id":
        return node[1] == name and name not in bound
    if node[0] == "macro":
        inner = bound | {node[3]}
        return _uses(node[2], name, bound) or _uses(node[4], name, inner) or \
            (node[5] is not None and _uses(node[5], name, inner))
    return any(_uses(c, name, bound) for c in _children(node))


def _check_names(node, bound):
    if node[0] == "id":
        if node[1] not in bound:
            raise CelError("undeclared reference to '%s' (in container '')" % node[1])
        return
    if node[0] == "macro":
        _check_names(node[2], bound)
        inner = bound | {node[3]}
        _check_names(node[4], inner)
        if node[5] is not None:
            _check_names(node[5], inner)
        return
    if node[0] == "call" and node[1] == "matches" and node[3][-1][0] == "lit":
        pat = node[3][-1][1]
        try:
            re.compile(pat if isinstance(pat, str) else "")
        except re.error as e:
            raise CelError("invalid regular expression %r: %s" % (pat, e))
        if isinstance(pat, str) and re.search(r"\(\?<?[=!]|(?<!\\)(?:\\\\)*\\[1-9]", pat):
            raise CelError("invalid regular expression %r: RE2 has no lookaround or backreferences" % pat)
    for c in _children(node):
        _check_names(c, bound)


_NONBOOL = {"list", "map", "neg"}


def _surely_not_bool(node):
    kind = node[0]
    if kind == "lit":
        return not isinstance(node[1], bool)
    if kind in _NONBOOL:
        return True
    if kind == "bin":
        return node[1] in ("+", "-", "*", "/", "%")
    if kind == "call":
        return node[1] not in ("startsWith", "endsWith", "contains", "matches", "dyn")
    if kind == "macro":
        return node[1] in ("map", "filter")
    if kind == "cond":
        return _surely_not_bool(node[2]) and _surely_not_bool(node[3])
    return False


def compile(source, variables=("self", "oldSelf")):
    """Parse and check a rule; returns a Program or raises CelError."""
    if not isinstance(source, str) or not source.strip():
        raise CelError("rule is empty")
    ast = _Parser(source).parse()
    _check_names(ast, set(variables))
    if _surely_not_bool(ast):
        raise CelError("cel expression must evaluate to a bool")
    return Program(source, ast)


def field_chains(node, root, bound=frozenset()):
    """Every chain of literal field selections starting at variable `root` in the rule:
    lists of field names, e.g. self.spec.size -> ["spec", "size"] (has() included)."""
    out = []

    def walk(n, bound):
        chain = []
        cur = n
        while cur[0] in ("sel", "has"):
            chain.append(cur[2])
            cur = cur[1]
        if cur[0] == "id" and cur[1] == root and root not in bound and chain:
            out.append(list(reversed(chain)))
        if n[0] == "macro":
            walk(n[2], bound)
            walk(n[4], bound | {n[3]})
            if n[5] is not None:
                walk(n[5], bound | {n[3]})
            return
        for c in _children(n):
            walk(c, bound)
    walk(node, set(bound))
    return out


# ---------------------------------------------------------------- evaluation

def _int(v):
    if v < INT_MIN or v > INT_MAX:
        raise EvalError("integer overflow")
    return v


def _uint(v):
    if v < 0 or v > UINT_MAX:
        raise EvalError("unsigned integer overflow")
    return UInt(v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v):
    """The numeric value of an int, uint or double (None for anything else)."""
    if _is_int(v) or isinstance(v, float):
        return v
    if isinstance(v, UInt):
        return v.v
    return None


def equal(a, b):
    """CEL heterogeneous equality."""
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for k, v in a.items():
            kb = _find_key(b, k)
            if kb is _MISSING or not equal(v, b[kb]):
                return False
        return True
    return a == b


_MISSING = object()


def _find_key(m, k):
    """The key of map m equal to k (CEL equality), or _MISSING."""
    if isinstance(k, str):
        return k if k in m else _MISSING
    for x in m:
        if equal(x, k):
            return x
    return _MISSING


def _compare(op, a, b):
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        x, y = na, nb
    elif type_name(a) == type_name(b) and isinstance(a, (str, bool)):
        x, y = a, b
    else:
        raise _overload()
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _arith(op, a, b):
    ta, tb = type_name(a), type_name(b)
    if ta != tb:
        raise _overload()
    if ta == "int":
        return _int_arith(op, a, b)
    if ta == "uint":
        if op in ("/", "%") and b.v == 0:
            raise EvalError("division by zero" if op == "/" else "modulus by zero")
        if op == "+":
            return _uint(a.v + b.v)
        if op == "-":
            return _uint(a.v - b.v)
        if op == "*":
            return _uint(a.v * b.v)
        return UInt(a.v // b.v if op == "/" else a.v % b.v)
    if ta == "double":
        return _double_arith(op, a, b)
    if op == "+" and ta in ("string", "list"):
        return a + b
    raise _overload()


def _int_arith(op, a, b):
    if op == "+":
        return _int(a + b)
    if op == "-":
        return _int(a - b)
    if op == "*":
        return _int(a * b)
    if b == 0:
        raise EvalError("division by zero" if op == "/" else "modulus by zero")
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    if op == "/":
        return _int(q)
    return a - b * q


def _double_arith(op, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            if a == 0 or math.isnan(a):
                return math.nan
            return math.copysign(math.inf, a) * math.copysign(1.0, b)
        return a / b
    raise _overload()


def _size(v):
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise _overload()


def _matches(s, pat):
    if not isinstance(s, str) or not isinstance(pat, str):
        raise _overload()
    try:
        return re.search(pat, s) is not None
    except re.error as e:
        raise EvalError("invalid regular expression %r: %s" % (pat, e))


def _convert(name, v):
    t = type_name(v)
    if name == "dyn":
        return v
    if name == "int":
        if t == "int":
            return v
        if t == "uint":
            return _int(v.v)
        if t == "double":
            if math.isnan(v) or math.isinf(v):
                raise EvalError("integer overflow")
            return _int(int(v))
        if t == "string":
            try:
                return _int(int(v, 10))
            except ValueError:
                raise EvalError("type conversion error from 'string' to 'int'")
    if name == "uint":
        if t == "uint":
            return v
        if t == "int":
            return _uint(v)
        if t == "double":
            if math.isnan(v) or math.isinf(v):
                raise EvalError("unsigned integer overflow")
            return _uint(int(v))
        if t == "string":
            try:
                return _uint(int(v, 10))
            except ValueError:
                raise EvalError("type conversion error from 'string' to 'uint'")
    if name == "double":
        if t in ("int", "double"):
            return float(v)
        if t == "uint":
            return float(v.v)
        if t == "string":
            try:
                return float(v)
            except ValueError:
                raise EvalError("type conversion error from 'string' to 'double'")
    if name == "string":
        if t == "string":
            return v
        if t == "int":
            return str(v)
        if t == "uint":
            return str(v.v)
        if t == "bool":
            return "true" if v else "false"
        if t == "double":
            return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    raise _overload()


def _call(name, target, args):
    if name == "size":
        return _size(target if target is not _NONE else args[0])
    if name == "matches":
        if target is not _NONE:
            return _matches(target, args[0])
        return _matches(args[0], args[1])
    if name in ("int", "uint", "double", "string", "dyn"):
        return _convert(name, args[0])
    if not isinstance(target, str):
        raise _overload()
    if name in ("lowerAscii", "upperAscii"):
        conv = str.lower if name == "lowerAscii" else str.upper
        return "".join(conv(c) if c.isascii() else c for c in target)
    if not isinstance(args[0], str):
        raise _overload()
    if name == "startsWith":
        return target.startswith(args[0])
    if name == "endsWith":
        return target.endswith(args[0])
    return args[0] in target    # contains


_NONE = object()


def _bool(v):
    if not isinstance(v, bool):
        raise _overload()
    return v


def _try(node, env):
    """(value, error): evaluate, capturing an EvalError (for && || and the macros)."""
    try:
        return evaluate(node, env), None
    except EvalError as e:
        return None, e


def _logic(node, env, short):
    """&& (short=False) and || (short=True): a side equal to `short` decides, even when the
    other side fails; otherwise the first error is raised."""
    a, ea = _try(node[1], env)
    if ea is None:
        a = _bool_or_err(a)
        if isinstance(a, EvalError):
            ea = a
        elif a is short:
            return short
    b, eb = _try(node[2], env)
    if eb is None:
        b = _bool_or_err(b)
        if isinstance(b, EvalError):
            eb = b
        elif b is short:
            return short
    if ea is not None:
        raise ea
    if eb is not None:
        raise eb
    return not short


def _bool_or_err(v):
    return v if isinstance(v, bool) else _overload()


def _index(obj, k):
    if isinstance(obj, list):
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        elif isinstance(k, UInt):
            k = k.v
        if not _is_int(k):
            raise _overload()
        if k < 0 or k >= len(obj):
            raise EvalError("index out of bounds: %d" % k)
        return obj[k]
    if isinstance(obj, dict):
        kk = _find_key(obj, k)
        if kk is _MISSING:
            raise EvalError("no such key: %s" % (k.v if isinstance(k, UInt) else k))
        return obj[kk]
    raise _overload()


def _macro(node, env):
    _, name, target, var, e1, e2 = node
    rng = evaluate(target, env)
    if isinstance(rng, dict):
        items = list(rng.keys())
    elif isinstance(rng, list):
        items = rng
    else:
        raise _overload()
    inner = dict(env)

    def run(e, x):
        inner[var] = x
        return evaluate(e, inner)
    if name == "all" or name == "exists":
        short = name == "exists"   # all: a false decides; exists: a true decides
        err = None
        for x in items:
            inner[var] = x
            v, e = _try(e1, inner)
            if e is None:
                v = _bool_or_err(v)
                if isinstance(v, EvalError):
                    e = v
                elif v is short:
                    return short
            if e is not None and err is None:
                err = e
        if err is not None:
            raise err
        return not short
    if name == "exists_one":
        return sum(1 for x in items if _bool(run(e1, x))) == 1
    if name == "filter":
        return [x for x in items if _bool(run(e1, x))]
    if e2 is None:      # map(x, t)
        return [run(e1, x) for x in items]
    return [run(e2, x) for x in items if _bool(run(e1, x))]


def evaluate(node, env):
    """Value of an AST node in env ({name: value}); raises EvalError."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "id":
        if node[1] not in env:
            raise EvalError("no such attribute: %s" % node[1])
        return env[node[1]]
    if kind == "sel":
        obj = evaluate(node[1], env)
        if not isinstance(obj, dict):
            raise EvalError("type '%s' does not support field selection" % type_name(obj))
        if node[2] not in obj:
            raise EvalError("no such key: %s" % node[2])
        return obj[node[2]]
    if kind == "has":
        obj = evaluate(node[1], env)
        if not isinstance(obj, dict):
            raise EvalError("type '%s' does not support field selection" % type_name(obj))
        return node[2] in obj
    if kind == "idx":
        return _index(evaluate(node[1], env), evaluate(node[2], env))
    if kind == "list":
        return [evaluate(e, env) for e in node[1]]
    if kind == "map":
        out = {}
        for ke, ve in node[1]:
            k = evaluate(ke, env)
            if not isinstance(k, (str, int, bool, UInt)):
                raise EvalError("unsupported map key type: %s" % type_name(k))
            if _find_key(out, k) is not _MISSING:
                raise EvalError("Failed with repeated key")
            out[k] = evaluate(ve, env)
        return out
    if kind == "not":
        return not _bool(evaluate(node[1], env))
    if kind == "neg":
        v = evaluate(node[1], env)
        if _is_int(v):
            return _int(-v)
        if isinstance(v, float):
            return -v
        raise _overload()
    if kind == "and":
        return _logic(node, env, False)
    if kind == "or":
        return _logic(node, env, True)
    if kind == "cond":
        return evaluate(node[2] if _bool(evaluate(node[1], env)) else node[3], env)
    if kind == "bin":
        return _binary(node[1], evaluate(node[2], env), evaluate(node[3], env))
    if kind == "call":
        target = evaluate(node[2], env) if node[2] is not None else _NONE
        return _call(node[1], target, [evaluate(a, env) for a in node[3]])
    if kind == "macro":
        return _macro(node, env)
    raise EvalError("unknown node %r" % kind)


def _binary(op, a, b):
    if op == "==":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    if op == "in":
        if isinstance(b, list):
            return any(equal(a, x) for x in b)
        if isinstance(b, dict):
            return _find_key(b, a) is not _MISSING
        raise _overload()
    if op in ("<", "<=", ">", ">="):
        return _compare(op, a, b)
    return _arith(op, a, b)
