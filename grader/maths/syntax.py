"""Mathematics as learners type it — LaTeX, Unicode or ASCII — read into one small expression tree.

Why not a library parser: latex2sympy2-extended (the parser behind Math-Verify) was tried on the
notations learners use for this course and refused most of them (``diag(p) − p pᵀ``, ``\\mathbb{1}[j=y]``,
``σ(z)_i``, ``e_y``, ``y_{pred}``), folded ``S`` into ``s``, and took 10–280 ms per formula; SymPy's own
``parse_expr`` runs ``eval`` on its input, which learner text must never reach; and neither knows which
symbol is a vector — which is exactly what the matcher decides, learner by learner. So this is a small
tokenizer and precedence parser, linear in its input and bounded in size and depth, that keeps vector,
index and indicator notation apart for :mod:`grader.maths.evaluate` to give them meaning.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

MAX_LENGTH = 400  # characters of one candidate expression; a formula learners write is a few dozen
MAX_DEPTH = 40  # nesting of brackets and operators
MAX_TOKENS = 300


class ParseError(ValueError):
    """Not an expression this parser reads; the candidate is skipped, never an error for the learner."""


# --- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Sym:
    """A letter with its decoration (``hat``) and subscripts; ``tags`` are word subscripts (``pred``) and marks
    such as ``*`` or ``(i)`` that only name the symbol."""

    name: str
    deco: str = ""
    sub: tuple[Node, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The symbol's identity across a document: ``\\hat{y}`` and ``y`` differ, ``y_i`` and ``y_j`` do not."""
        tag = "".join(f"_{t}" for t in self.tags)
        return f"{self.deco}({self.name}){tag}" if self.deco else f"{self.name}{tag}"


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Node, ...]
    sub: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Op:
    """``op`` is one of add, mul, dot, div, pow, neg, outer, hadamard, transpose."""

    op: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Indicator:
    left: Node
    right: Node
    equal: bool = True


@dataclass(frozen=True)
class Sum:
    index: str
    body: Node
    exclude: Node | None = None


@dataclass(frozen=True)
class Deriv:
    """∂a/∂b, da/db, ∇: the question, not an answer; it is never evaluated."""

    text: str = ""


Node = Num | Sym | Call | Op | Indicator | Sum | Deriv

ONES = "𝟏"  # the vector of ones (\mathbf{1}, 1ᵀ): a constant, never a quantity
FUNCTIONS = frozenset({"diag", "exp", "log", "ln", "sqrt", "max"})  # mathematics' own; a rubric adds its lab's
_WORDS = FUNCTIONS | {"sum", "delta", "sigma"}
_FIRST_PRIVATE = 0xE000  # a rubric's function names stand in the text as private-use characters while it is read


@dataclass(frozen=True)
class Vocabulary:
    """A rubric's own functions (``onehot``, ``f``) and how learners spell them; ``classes`` take a class index."""

    spellings: tuple[tuple[str, str], ...] = ()  # (spelling, function name)
    classes: frozenset[str] = frozenset()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in self.spellings))

    def words(self) -> frozenset[str]:
        """Every spelling and name, folded, for telling a function's name from a word of prose."""
        return frozenset(w.lower().replace("\\", "").replace("_", "").replace("-", "") for pair in self.spellings for w in pair)


EMPTY = Vocabulary()


@functools.lru_cache(maxsize=64)
def _spelling_pattern(vocabulary: Vocabulary) -> re.Pattern[str] | None:
    if not vocabulary.spellings:
        return None
    alternatives = []
    for spelling, _ in sorted(vocabulary.spellings, key=lambda pair: -len(pair[0])):
        flexible = "".join(r"\\?[_\- ]?" if c in "_- " else re.escape(c) for c in spelling)
        single = len(spelling.lstrip("\\")) == 1 or spelling.startswith("\\") and spelling[1:].isalpha()
        follow = r"(?=\s*[(\[])" if single else r"(?![A-Za-z])"  # σ(z) is a call; σ_i is a symbol
        alternatives.append(f"(?<![A-Za-z\\\\]){flexible}{follow}" if not spelling.startswith("\\") else f"{flexible}{follow}")
    return re.compile("|".join(f"({a})" for a in alternatives), re.IGNORECASE)


def _name_functions(text: str, vocabulary: Vocabulary) -> str:
    """Each spelling of a rubric function becomes one private-use character naming it."""
    pattern = _spelling_pattern(vocabulary)
    if pattern is None:
        return text
    ordered = [name for _, name in sorted(vocabulary.spellings, key=lambda pair: -len(pair[0]))]
    names = vocabulary.names

    def replace(match: re.Match[str]) -> str:
        group = next(k for k, g in enumerate(match.groups()) if g is not None)
        return chr(_FIRST_PRIVATE + names.index(ordered[group]))

    return pattern.sub(replace, text)

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "varsigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}  # fmt: skip
_GREEK_NAMES = {letter: name for name, letter in _GREEK.items()}
_DECORATIONS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde", "widetilde": "tilde"}
_TRANSPARENT = frozenset("mathbf boldsymbol bm pmb vec mathit mathnormal mathsf mathcal mathscr boxed underline".split())
_NAMING = frozenset("mathrm operatorname text textrm textit textbf texttt textsf textnormal mbox".split())
_IGNORED = frozenset(
    "left right middle big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr bigm Bigm , ; : ! > quad "
    "qquad enspace thinspace medspace thickspace negthinspace displaystyle textstyle scriptstyle scriptscriptstyle "
    "limits nolimits rm bf sf it cal".split()  # switches without an argument: \sum\limits_k, {\rm T}
)
_COMMAND_TOKENS = {
    "cdot": "*", "cdotp": "*", "times": "*", "ast": "*", "otimes": "⊗", "odot": "⊙", "circ": "⊙",
    "top": "ᵀ", "intercal": "ᵀ", "partial": "∂", "nabla": "∇", "sum": "∑", "frac": "frac", "dfrac": "frac",
    "tfrac": "frac", "cfrac": "frac", "sqrt": "sqrt", "exp": "exp", "log": "log", "ln": "ln", "max": "max",
    "neq": "≠", "ne": "≠", "lbrace": "{", "rbrace": "}", "lbrack": "[", "rbrack": "]", "lparen": "(", "rparen": ")",
    "langle": "(", "rangle": ")", "{": "(", "}": ")", "mid": "|", "vert": "|", "lvert": "|", "rvert": "|", "prime": "'", "mathbb": "bb", "mathds": "bb", "mathbbm": "bb",
    "_": "_", "star": "*",
}  # fmt: skip
_SCRIPT = re.compile(r"[\u00b2\u00b3\u00b9\u1d00-\u1dbf\u2070-\u209f\u2c7c]")


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "cmd" (a structural command: frac, sqrt, bb, deco:hat, naming)
    text: str
    space: bool = False  # preceded by white space (ASCII subscripts stop there)


# --- tokens ----------------------------------------------------------------------------------


def _scripts(text: str) -> str:
    """Unicode sub- and superscripts as ``_{…}`` and ``^{…}``, before NFKC would flatten them to plain letters."""
    if not _SCRIPT.search(text):
        return text
    out: list[str] = []
    run: list[str] = []
    mode = ""

    def flush() -> None:
        if run:
            out.append(("_{" if mode == "sub" else "^{") + "".join(run) + "}")
            run.clear()

    for char in text:
        name = unicodedata.name(char, "")
        kind = "sub" if "SUBSCRIPT" in name else "sup" if ("SUPERSCRIPT" in name or name.startswith("MODIFIER LETTER")) else ""
        if kind and (kind != mode):
            flush()
        if kind:
            mode = kind
            run.append(unicodedata.normalize("NFKC", char))
        else:
            flush()
            mode = ""
            out.append(char)
    flush()
    return "".join(out)


_SYMBOLS = str.maketrans({
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2796\u2013", "-"),
    "·": "*", "⋅": "*", "∙": "*", "×": "*", "∗": "*", "⊤": "ᵀ", "Σ": "∑", "≔": "=", "⟨": "(", "⟩": ")",
    "〈": "(", "〉": ")", "’": "'", "′": "'",
})  # fmt: skip


def prepare(text: str) -> str:
    """Unicode and ASCII spellings folded to one alphabet, scripts kept as scripts."""
    text = _scripts(text.translate(_SYMBOLS))
    return unicodedata.normalize("NFKC", text).translate(_SYMBOLS)


def tokenize(text: str, vocabulary: Vocabulary = EMPTY) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ParseError("too long")
    text = _name_functions(prepare(text), vocabulary)
    names = vocabulary.names
    tokens: list[Token] = []
    i, n = 0, len(text)
    space = False
    while i < n:
        char = text[i]
        if char.isspace() or char == "~":
            space = True
            i += 1
            continue
        if _FIRST_PRIVATE <= ord(char) < _FIRST_PRIVATE + len(names):
            tokens.append(Token("name", "fn:" + names[ord(char) - _FIRST_PRIVATE], space))
            i += 1
            space = False
            continue
        if char == "\\":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            if j == i + 1:
                j = min(i + 2, n)
            name = text[i + 1 : j]
            i = j
            if name in _IGNORED:
                space = True
                continue
            if name == "\\":
                raise ParseError("line break")
            if name in _GREEK:
                tokens.append(Token("name", _GREEK[name], space))
            elif name in _COMMAND_TOKENS:
                mapped = _COMMAND_TOKENS[name]
                kind = "cmd" if mapped in ("frac", "sqrt", "bb", "exp", "log", "ln", "max") else "op"
                if mapped in ("exp", "log", "ln", "max"):
                    kind = "name"
                tokens.append(Token(kind, mapped, space))
            elif name in _DECORATIONS:
                tokens.append(Token("cmd", "deco:" + _DECORATIONS[name], space))
            elif name in _TRANSPARENT:
                tokens.append(Token("cmd", "transparent", space))
            elif name in _NAMING:
                tokens.append(Token("cmd", "naming", space))
            elif name.lower() in _WORDS:
                tokens.append(Token("name", name.lower(), space))
            elif name in ("le", "leq", "ge", "geq", "approx", "equiv", "in", "to", "rightarrow", "mapsto", "iff", "implies"):
                raise ParseError("relation inside")
            else:
                raise ParseError(f"unknown command \\{name}")
            space = False
            continue
        if char.isdigit() or (char == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and text[j].isdigit():
                j += 1
            if j < n and text[j] == "." and j + 1 < n and text[j + 1].isdigit():
                j += 1
                while j < n and text[j].isdigit():
                    j += 1
            if j + 1 < n and text[j] in "eE" and (text[j + 1].isdigit() or (text[j + 1] in "+-" and j + 2 < n and text[j + 2].isdigit())):
                j += 2
                while j < n and text[j].isdigit():
                    j += 1
            tokens.append(Token("num", text[i:j], space))
            i = j
        elif char.isalpha():
            j = i
            while j < n and text[j].isalpha():
                j += 1
            tokens.extend(_letters(text[i:j], space))
            i = j
        elif char in "=!" and i + 1 < n and text[i + 1] == "=":  # ASCII == and !=
            tokens.append(Token("op", "=" if char == "=" else "≠", space))
            i += 2
        elif char in "+-*/^_()[]{}|,=≠<>'!∂∇∑⊗⊙ᵀ&;:":
            tokens.append(Token("op", char, space))
            i += 1
        else:
            raise ParseError(f"unexpected {char!r}")
        space = False
        if len(tokens) > MAX_TOKENS:
            raise ParseError("too many tokens")
    return tokens


def _letters(run: str, space: bool) -> list[Token]:
    """A run of letters is a known word (``diag``, ``exp``), else one symbol per letter (``pp`` is p·p)."""
    lowered = run.lower()
    if lowered in ("delta", "sigma"):
        return [Token("name", _GREEK[lowered], space)]
    if lowered in _WORDS or lowered in ("one",):
        return [Token("name", lowered, space)]
    for word in sorted(_WORDS, key=len, reverse=True):  # "diagp" is diag p, "logp" log p
        if lowered.startswith(word) and len(run) > len(word):
            return [Token("name", word, space), *_letters(run[len(word) :], False)]
    return [Token("name", char, space if k == 0 else False) for k, char in enumerate(run)]


# --- parsing ---------------------------------------------------------------------------------


_STARTS_ATOM = frozenset({"(", "[", "{", "∂", "∇", "∑"})
_MUL_OPS = {"*": "mul", "⊗": "outer", "⊙": "hadamard", "/": "div"}


class _Parser:
    def __init__(self, tokens: list[Token], greedy: bool, vocabulary: Vocabulary = EMPTY) -> None:
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.at = 0
        self.depth = 0
        self.greedy = greedy  # ASCII habit: p_ij is p with subscript ij; LaTeX: p_i then j
        self.derivative = False

    def peek(self, offset: int = 0) -> Token | None:
        k = self.at + offset
        return self.tokens[k] if k < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise ParseError("unexpected end")
        self.at += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise ParseError(f"expected {text}")

    def is_op(self, text: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "op" and token.text == text

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("nested too deeply")

    # expression := term (('+'|'-') term)*
    def expression(self) -> Node:
        self.nested()
        terms: list[Node] = []
        sign = 1
        if self.is_op("+") or self.is_op("-"):
            sign = -1 if self.take().text == "-" else 1
        terms.append(self.term() if sign > 0 else Op("neg", (self.term(),)))
        while self.is_op("+") or self.is_op("-"):
            negative = self.take().text == "-"
            term = self.term()
            terms.append(Op("neg", (term,)) if negative else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else Op("add", tuple(terms))

    # term := factor ((op | juxtaposition) factor)*
    def term(self) -> Node:
        self.nested()
        node = self.factor()
        while True:
            token = self.peek()
            if token is None:
                break
            if token.kind == "op" and token.text in _MUL_OPS:
                self.take()
                right = self.factor()
                op = _MUL_OPS[token.text]
                node = Op("div", (node, right)) if op == "div" else Op(op, (node, right))
                node = _derivative(node) or node
            elif self._starts_factor(token):
                right = self.factor()
                node = Op("dot", (node, right))
            else:
                break
        self.depth -= 1
        return node

    def _starts_factor(self, token: Token) -> bool:
        if token.kind in ("num", "name", "cmd"):
            return True
        return token.kind == "op" and token.text in _STARTS_ATOM

    # factor := '-' factor | power
    def factor(self) -> Node:
        if self.is_op("-"):
            self.take()
            return Op("neg", (self.factor(),))
        if self.is_op("+"):
            self.take()
            return self.factor()
        return self.power()

    def power(self) -> Node:
        node = self.postfix()
        while True:
            if self.is_op("^"):
                self.take()
                node = self._superscript(node)
            elif self.is_op("ᵀ") or self.is_op("'"):
                self.take()
                node = Op("transpose", (node,))
            elif self.is_op("_") and isinstance(node, (Sym, Call)):
                self.take()
                node = self._subscripted(node)
            elif self.is_op("_") and isinstance(node, Op) and node.op == "pow" and isinstance(node.args[0], Sym):
                self.take()  # δ^i_j: the lower index belongs to δ, beside the upper one
                node = Op("pow", (self._subscripted(node.args[0]), node.args[1]))
            else:
                return node

    def _superscript(self, base: Node) -> Node:
        token = self.peek()
        if token is None:
            raise ParseError("dangling ^")
        skip = self._transpose_mark()
        if skip:
            self.at += skip
            return Op("transpose", (base,))
        if token.kind == "op" and token.text == "{":
            inner = self.peek(1)
            if inner is not None and inner.kind == "op" and inner.text in ("*", "(", "[") and isinstance(base, Sym):
                self.take()
                label, transposed = self._tag_group()
                node: Node = Sym(base.name, base.deco, base.sub, (*base.tags, label))
                return Op("transpose", (node,)) if transposed else node
        if token.kind == "op" and token.text == "*" and isinstance(base, Sym):
            self.take()
            return Sym(base.name, base.deco, base.sub, (*base.tags, "*"))
        exponent = self._script_argument()
        return Op("pow", (base, exponent))

    def _transpose_mark(self) -> int:
        """How many tokens after ``^`` spell a transpose — ``T``, ``{T}``, ``\\top``, ``{\\mathsf{T}}``, ``\\mathrm T``,
        ``{\\rm T}`` — or 0. A ``T`` with a subscript of its own (``T_k``) is a power."""
        k = 0
        braces: list[str] = []
        while len(braces) < 3:
            token = self.peek(k)
            if token is None:
                return 0
            if token.kind == "op" and token.text == "{":
                braces.append("}")
            elif token.kind == "cmd" and token.text in ("transparent", "naming"):
                pass
            else:
                break
            k += 1
        token = self.peek(k)
        if token is None or not (token.kind == "op" and token.text == "ᵀ" or token.kind == "name" and token.text in ("T", "t")):
            return 0
        k += 1
        for closer in braces:
            if not self.is_op(closer, k):
                return 0
            k += 1
        return 0 if self.is_op("_", k) and not braces else k

    def _tag_group(self) -> tuple[str, bool]:
        """``^{(i)}``, ``^{[L]}`` or ``^{*}``: a mark naming a symbol (a sample, a layer, a true value), not a power;
        ``^{[L]T}`` is that symbol transposed."""
        parts: list[str] = []
        depth = 1
        while depth:
            token = self.take()
            if token.kind == "op" and token.text == "{":
                depth += 1
            elif token.kind == "op" and token.text == "}":
                depth -= 1
                if not depth:
                    break
            parts.append(token.text)
        transposed = len(parts) > 1 and parts[-1] in ("T", "ᵀ") and parts[-2] in (")", "]")
        return "".join(parts[:-1] if transposed else parts), transposed

    def _script_argument(self) -> Node:
        """What ``^`` or a one-token script takes: a braced group, or a single token."""
        token = self.take()
        if token.kind == "op" and token.text in ("{", "("):
            closer = "}" if token.text == "{" else ")"
            node = self.expression()
            self.expect(closer)
            return node
        if token.kind == "op" and token.text == "-":
            return Op("neg", (self._script_argument(),))
        if token.kind == "num":
            return Num(float(token.text))
        if token.kind == "name":
            return Sym(token.text)
        raise ParseError("bad script")

    def _subscripted(self, node: Sym | Call) -> Node:
        atoms, tags = self._subscript_atoms()
        if isinstance(node, Sym) and node.name == ONES:
            return _ones_with(atoms, tags)
        if isinstance(node, Call):
            return Call(node.fn, node.args, node.sub + atoms)
        return Sym(node.name, node.deco, node.sub + atoms, node.tags + tags)

    def _subscript_atoms(self) -> tuple[tuple[Node, ...], tuple[str, ...]]:
        token = self.take()
        if token.kind == "op" and token.text == "{":
            return self._subscript_group()
        if token.kind == "op" and token.text == "(":  # y_(i)
            inner, tags = self._subscript_group(closer=")")
            return inner, tags
        if token.kind == "num":
            text = token.text if self.greedy else token.text[0]
            if not self.greedy and len(token.text) > 1:
                self._push_back(Token("num", token.text[1:]))
            return (Num(float(text)),), ()
        if token.kind == "name":
            if self.greedy:
                letters = [token.text]
                while (nxt := self.peek()) is not None and nxt.kind == "name" and not nxt.space and len(nxt.text) == 1:
                    letters.append(self.take().text)
                return _atoms_of(letters)
            if len(token.text) > 1 and token.text not in FUNCTIONS:
                return (), (token.text,)
            return (Sym(token.text),), ()
        raise ParseError("bad subscript")

    def _push_back(self, token: Token) -> None:
        self.tokens = [*self.tokens[: self.at], token, *self.tokens[self.at :]]

    def _subscript_group(self, closer: str = "}") -> tuple[tuple[Node, ...], tuple[str, ...]]:
        """``{ij}``, ``{i,j}``, ``{pred}``, ``{y_i}``, ``{k=1}`` (a sum's range is read by the sum)."""
        items: list[Node] = []
        tags: list[str] = []
        letters: list[str] = []
        while True:
            token = self.take()
            if token.kind == "op" and token.text == closer:
                break
            if token.kind == "op" and token.text == ",":
                items.extend(_atoms_of(letters)[0]) if letters else None
                letters = []
                continue
            if token.kind == "name" and len(token.text) == 1 and self.is_op("^") and (
                    self.is_op("*", 1) or self.is_op("{", 1) and self.is_op("*", 2) and self.is_op("}", 3)):
                self.at += 2 if self.is_op("*", 1) else 4  # p_{y^*}: the true class's letter, marked
                items.extend(_atoms_of(letters)[0]) if letters else None
                letters = []
                items.append(Sym(token.text, tags=("*",)))
                continue
            if token.kind == "name" and len(token.text) == 1 and not self.is_op("_"):
                letters.append(token.text)
                continue
            if token.kind == "name" and len(token.text) == 1:  # y_i inside a subscript: a symbol of its own
                if letters:
                    atoms, more = _atoms_of(letters)
                    items.extend(atoms)
                    tags.extend(more)
                    letters = []
                self.take()
                inner, _ = self._subscript_atoms()
                items.append(Sym(token.text, sub=inner))
                continue
            if token.kind == "name":  # a word: y_{pred}, p_{true}
                tags.append(token.text)
                continue
            if token.kind == "num":
                items.append(Num(float(token.text)))
                continue
            raise ParseError("unusual subscript")
        if letters:
            atoms, more = _atoms_of(letters)
            items.extend(atoms)
            tags.extend(more)
        return tuple(items), tuple(tags)

    def postfix(self) -> Node:
        node = self.atom()
        while self.is_op("_") and isinstance(node, (Sym, Call)):
            self.take()
            node = self._subscripted(node)
        if isinstance(node, Sym) and node.sub and self.is_op("("):
            node = self._component(node)
        if isinstance(node, Sym) and self.is_op("(") and not self.peek().space:  # type: ignore[union-attr]
            node = self._indexed(node)
        return node

    def _component(self, node: Sym) -> Node:
        """``σ_j(\\mathbf z)``: component j of a lab function of one symbol; ``σ_i(1 − σ_i)`` stays a product."""
        fn = next((name for spelling, name in self.vocabulary.spellings
                   if spelling.lstrip("\\") in (node.name, _GREEK_NAMES.get(node.name))), None)
        closing = self._closing(self.at)
        if fn is None or node.deco or node.tags or closing < 0:
            return node
        inside = [t for t in self.tokens[self.at + 1 : closing] if not (t.kind == "cmd" and t.text == "transparent")]
        if [t.kind for t in inside] == ["op", "name", "op"] and inside[0].text == "{" and inside[2].text == "}":
            inside = inside[1:2]
        if len(inside) != 1 or inside[0].kind != "name" or len(inside[0].text) != 1:
            return node
        self.at = closing + 1
        return Call(fn, (Sym(inside[0].text),), node.sub)

    def _indexed(self, node: Sym) -> Node:
        """``p(k | z)`` and ``p(y = j | x)`` (a probability given the logits: its index is before the bar), and
        MATLAB's ``p(i)``, ``delta(i,j)``: indices in parentheses, glued to the symbol. Anything else is a product."""
        closing = self._closing(self.at)
        if closing < 0:
            return node
        inside = self.tokens[self.at + 1 : closing]
        bar = next((k for k, t in enumerate(inside) if t.kind == "op" and t.text == "|"), -1)
        if bar > 0:
            head = inside[:bar]
            equals = next((k for k, t in enumerate(head) if t.kind == "op" and t.text == "="), -1)
            index = head[equals + 1 :] if equals >= 0 else head
            if len(index) == 1 and index[0].kind in ("name", "num") and len(index[0].text) == 1:
                self.at = closing + 1
                return Sym(node.name, node.deco, (*node.sub, _index_atom(index[0])), node.tags)
            return node
        if node.sub or not inside or len(inside) > 5:
            return node
        atoms: list[Node] = []
        for k, token in enumerate(inside):
            if k % 2:
                if not (token.kind == "op" and token.text == ","):
                    return node
            elif token.kind in ("name", "num") and len(token.text) == 1:
                atoms.append(_index_atom(token))
            else:
                return node
        self.at = closing + 1
        return Sym(node.name, node.deco, tuple(atoms), node.tags)

    def _closing(self, start: int) -> int:
        """The position of the bracket closing the one at ``start`` (within a few dozen tokens), or -1."""
        depth = 0
        for k in range(start, min(len(self.tokens), start + 40)):
            token = self.tokens[k]
            if token.kind == "op" and token.text in "([{":
                depth += 1
            elif token.kind == "op" and token.text in ")]}":
                depth -= 1
                if depth == 0:
                    return k if token.text == ")" else -1
        return -1

    def atom(self) -> Node:
        self.nested()
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> Node:
        token = self.take()
        if token.kind == "num":
            if token.text == "1" and self._indicator_follows():
                return self._indicator()
            if token.text == "1" and self.is_op("_"):
                return Sym(ONES)  # 1_y, 1_K: read with its subscript
            return Num(float(token.text))
        if token.kind == "op":
            if token.text in ("(", "[", "{"):
                closer = {"(": ")", "[": "]", "{": "}"}[token.text]
                if token.text == "[" and self._relation_inside("]"):
                    return self._condition("]")
                node = self.expression()
                self.expect(closer)
                return node
            if token.text in ("∂", "∇"):
                self.derivative = True
                self._skip_operand()
                return Deriv(token.text)
            if token.text == "∑":
                return self._sum()
            raise ParseError(f"unexpected {token.text}")
        if token.kind == "cmd":
            return self._command(token.text)
        return self._name(token)

    def _skip_operand(self) -> None:
        """∂p_i, ∇_z L: what is differentiated; the whole thing is a Deriv, never evaluated."""
        if self.is_op("_"):
            self.take()
            self._subscript_atoms()
        token = self.peek()
        if token is not None and (token.kind in ("name", "num", "cmd") or (token.kind == "op" and token.text in "({[")):
            self.power()

    def _indicator_follows(self) -> bool:
        token = self.peek()
        if token is None or token.kind != "op":
            return False
        if token.text in ("[", "(", "{"):
            return self._relation_inside({"[": "]", "(": ")", "{": "}"}[token.text], offset=1)
        if token.text != "_" or not self.is_op("{", 1):
            return False
        return self._relation_inside("}", offset=2) or self.is_op("(", 2) and self._relation_inside(")", offset=3)

    def _relation_inside(self, closer: str, offset: int = 0) -> bool:
        depth = 0
        k = self.at + offset
        while k < len(self.tokens):
            token = self.tokens[k]
            if token.kind == "op" and token.text in "([{":
                depth += 1
            elif token.kind == "op" and token.text in ")]}":
                if depth == 0:
                    return False
                depth -= 1
            elif depth == 0 and token.kind == "op" and token.text in ("=", "≠"):
                return True
            k += 1
        return False

    def _indicator(self) -> Node:
        token = self.take()
        if token.text == "_":
            self.expect("{")
            if self.is_op("(") and not self._relation_inside("}"):  # 1_{\{j=y\}}
                self.take()
                node = self._condition(")")
                self.expect("}")
                return node
            return self._condition("}")
        return self._condition({"[": "]", "(": ")", "{": "}"}[token.text])

    def _condition(self, closer: str) -> Node:
        left = self.expression()
        relation = self.take()
        if relation.kind != "op" or relation.text not in ("=", "≠"):
            raise ParseError("not a condition")
        right = self.expression()
        self.expect(closer)
        return Indicator(left, right, relation.text == "=")

    def _command(self, name: str) -> Node:
        if name == "frac":
            numerator = self._argument()
            denominator = self._argument()
            node = Op("div", (numerator, denominator))
            return _derivative(node) or node
        if name == "sqrt":
            return Call("sqrt", (self._argument(),))
        if name == "bb":
            inner = self._argument()
            if isinstance(inner, Num) and inner.value == 1 or isinstance(inner, Sym) and inner.name in ("I", "1"):
                if self._indicator_follows():
                    return self._indicator()
                if isinstance(inner, Num):
                    return Sym(ONES)  # 𝟙 with no condition: the vector of ones
                raise ParseError("a bare indicator")
            if isinstance(inner, Sym) and inner.name == "R":
                raise ParseError("a set")
            return inner
        if name.startswith("deco:"):
            inner = self._argument()
            if isinstance(inner, Num) and inner.value == 1:
                return Sym(ONES)
            if not isinstance(inner, Sym):
                raise ParseError("decorated expression")
            return Sym(inner.name, name[5:], inner.sub, inner.tags)
        if name == "transparent":
            inner = self._argument()
            if isinstance(inner, Num) and inner.value == 1:
                return self._indicator() if self._indicator_follows() else Sym(ONES)  # \mathbf{1}: the ones vector
            return inner
        if name == "naming":
            return self._naming()
        raise ParseError(name)

    def _naming(self) -> Node:
        """``\\operatorname{diag}``, ``\\text{onehot}``, ``\\mathrm{d}``: a word in braces."""
        self.expect("{")
        words: list[str] = []
        while not self.is_op("}"):
            token = self.take()
            if token.kind not in ("name", "num") and not (token.kind == "op" and token.text == "_"):
                raise ParseError("prose in \\text")
            words.append(token.text)
        self.take()
        if len(words) == 1 and words[0].startswith("fn:"):
            return self._name(Token("name", words[0]))
        word = "".join(words).replace("_", "").lower()
        if word in _WORDS:
            return self._name(Token("name", word))
        if len(word) == 1:
            return self._name(Token("name", "".join(words)))
        raise ParseError(f"the word {word}")

    def _argument(self) -> Node:
        """A command's argument: a braced group or one token (``\\frac12``)."""
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == "{":
            self.take()
            node = self.expression()
            self.expect("}")
            return node
        token = self.take()
        if token.kind == "num":
            if len(token.text) > 1 and token.text.isdigit():
                self._push_back(Token("num", token.text[1:]))
                return Num(float(token.text[0]))
            return Num(float(token.text))
        if token.kind == "name":
            return self._name(token)
        if token.kind == "op" and token.text in ("∂", "∇"):
            self.derivative = True
            return Deriv(token.text)
        if token.kind == "cmd":
            return self._command(token.text)
        raise ParseError("bad argument")

    def _name(self, token: Token) -> Node:
        word = token.text
        if word == "sum":
            return self._sum()
        if word.startswith("fn:"):
            return self._call(word[3:])
        if word in FUNCTIONS:
            return self._call(word)
        if word == "d" and self._derivative_d():
            self.derivative = True
            self._skip_operand()
            return Deriv("d")
        if word == "one":
            raise ParseError(word)
        return Sym(word)

    def _derivative_d(self) -> bool:
        """``dp_i/dz_j``: a ``d`` glued to a letter, on both sides of a division."""
        token = self.peek()
        return token is not None and token.kind == "name" and not token.space and any(
            t.kind == "op" and t.text == "/" for t in self.tokens[self.at : self.at + 6]
        ) or token is not None and token.kind == "name" and not token.space and any(
            t.kind == "op" and t.text == "/" for t in self.tokens[max(0, self.at - 6) : self.at]
        )

    def _call(self, fn: str) -> Node:
        before: tuple[Node, ...] = ()
        if self.is_op("_"):  # σ_j(z): component j of σ(z)
            self.take()
            before, _ = self._subscript_atoms()
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in ("(", "[", "{"):
            self.take()
            closer = {"(": ")", "[": "]", "{": "}"}[token.text]
            args = [self.expression()]
            while self.is_op(","):
                self.take()
                args.append(self.expression())
            self.expect(closer)
            node: Node = Call(fn, tuple(args), before)
        else:
            if token is None:
                raise ParseError("a function without its argument")
            node = Call(fn, (self.power(),), before)
        if self.is_op("_"):
            self.take()
            atoms, _ = self._subscript_atoms()
            node = Call(fn, node.args, node.sub + atoms)  # type: ignore[union-attr]
        return node

    def _sum(self) -> Node:
        index, exclude = "", None
        if self.is_op("_"):
            self.take()
            index, exclude = self._sum_range()
        if self.is_op("^"):
            self.take()
            self._script_argument()
        body = self.term()
        if not index:
            raise ParseError("a sum without its index")
        return Sum(index, body, exclude)

    def _sum_range(self) -> tuple[str, Node | None]:
        token = self.take()
        if token.kind == "name" and len(token.text) == 1:
            return token.text, None
        if not (token.kind == "op" and token.text == "{"):
            raise ParseError("sum range")
        first = self.take()
        if first.kind != "name" or len(first.text) != 1:
            raise ParseError("sum index")
        exclude: Node | None = None
        if self.is_op("≠"):
            self.take()
            exclude = self.expression()
        elif self.is_op("="):
            self.take()
            self.expression()
        elif self.is_op(","):  # \sum_{k, k≠i}
            raise ParseError("sum range")
        self.expect("}")
        return first.text, exclude


_SIZES = frozenset("nmdKCNDM")  # letters that give a size: 𝟏_K is K ones, 𝟏_y the indicator of class y


def _ones_with(atoms: tuple[Node, ...], tags: tuple[str, ...]) -> Node:
    """``𝟏_y``: the indicator vector of y (the basis vector e_y); ``𝟏_K``, ``𝟏_n``: the vector of ones."""
    if len(atoms) == 1 and not tags and isinstance(atoms[0], Sym) and not atoms[0].sub and atoms[0].name not in _SIZES:
        return Sym("e", sub=atoms)
    return Sym(ONES)


def _index_atom(token: Token) -> Node:
    return Num(float(token.text)) if token.kind == "num" else Sym(token.text)


def _atoms_of(letters: list[str]) -> tuple[tuple[Node, ...], tuple[str, ...]]:
    """Subscript letters: ``ij`` is two indices, ``pred`` or ``true`` one word that names the symbol."""
    word = "".join(letters)
    if len(letters) >= 3:
        return (), (word,)
    return tuple(Sym(c) for c in letters), ()


def _derivative(node: Op) -> Deriv | None:
    """``\\frac{∂p_i}{∂z_j}``, ``dp/dz``: a derivative is asked for, not given."""
    if node.op != "div":
        return None
    top, bottom = node.args
    if _starts_with_derivative(top) and _starts_with_derivative(bottom):
        return Deriv("∂")
    return None


def _starts_with_derivative(node: Node) -> bool:
    while isinstance(node, Op) and node.op in ("dot", "mul") and node.args:
        node = node.args[0]
    return isinstance(node, Deriv) or isinstance(node, Sym) and node.name == "d" and not node.sub


def parse(text: str, *, greedy: bool = False, vocabulary: Vocabulary = EMPTY) -> Node:
    """One expression, or ParseError. ``greedy`` reads ASCII subscripts (``p_ij``) as one group."""
    tokens = tokenize(text, vocabulary)
    if not tokens:
        raise ParseError("empty")
    parser = _Parser(tokens, greedy, vocabulary)
    node = parser.expression()
    if parser.at != len(parser.tokens):
        raise ParseError(f"unexpected {parser.tokens[parser.at].text!r}")
    if parser.derivative and not isinstance(node, Deriv):
        return Op("add", (node, Deriv("mixed")))  # part question, part answer: still not an answer
    return node


def parses(text: str, vocabulary: Vocabulary = EMPTY) -> tuple[Node, ...]:
    """Every reading of ``text`` that parses: LaTeX's one-token scripts and ASCII's greedy ones, once each."""
    found: list[Node] = []
    for greedy in (False, True):
        try:
            node = parse(text, greedy=greedy, vocabulary=vocabulary)
        except (ParseError, RecursionError):
            continue
        if node not in found:
            found.append(node)
    return tuple(found)


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents first (iterative: depth is bounded, but recursion is not needed)."""
    out: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        if isinstance(current, Sym):
            stack.extend(current.sub)
        elif isinstance(current, Call):
            stack.extend(current.args)
            stack.extend(current.sub)
        elif isinstance(current, Op):
            stack.extend(current.args)
        elif isinstance(current, Indicator):
            stack.extend((current.left, current.right))
        elif isinstance(current, Sum):
            stack.append(current.body)
            if current.exclude is not None:
                stack.append(current.exclude)
    return out


def has_derivative(node: Node) -> bool:
    return any(isinstance(n, Deriv) for n in walk(node))
