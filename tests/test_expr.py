"""Graph expressions: what the ast-based parser accepts, what it refuses, unparse and rename."""
import pytest

from lvmgraph.graph import expr as E
from lvmgraph.graph.expr import Attr, BinOp, Call, Const, Name, Neg, Seq


@pytest.mark.parametrize("text, tree", [
    ("x", Name("x")),
    ("vae.encoder", Name("vae.encoder")),
    ("q.mean", Name("q.mean")),  # the compiler decides which prefix is a name
    ("encoder(x)", Call(Name("encoder"), (Name("x"),), ())),
    ("prior.sample(like=z)", Call(Name("prior.sample"), (), (("like", Name("z")),))),
    ("concat([a, b], dim=1)", Call(Name("concat"), (Seq((Name("a"), Name("b"))),), (("dim", Const(1)),))),
    ("critic(x).logit", Attr(Call(Name("critic"), (Name("x"),), ()), "logit")),
    ("d(x).out.mean", Attr(Attr(Call(Name("d"), (Name("x"),), ()), "out"), "mean")),
    ("f(1, 2.5, 'a', True, None)", Call(Name("f"), (Const(1), Const(2.5), Const("a"), Const(True), Const(None)), ())),
    ("(1, x)", Seq((Const(1), Name("x")))),
    ("a + b * c", BinOp("+", Name("a"), BinOp("*", Name("b"), Name("c")))),
    ("a - b / c ** 2", BinOp("-", Name("a"), BinOp("/", Name("b"), BinOp("**", Name("c"), Const(2))))),
    ("-x", Neg(Name("x"))),
    ("+x", Name("x")),
    ("-3", Const(-3)),
    ("-2.5e-3", Const(-2.5e-3)),
    ("  0.5 * rec  ", BinOp("*", Const(0.5), Name("rec"))),
])
def test_parse(text, tree):
    assert E.parse(text) == tree


def test_names_lists_every_name_including_callees():
    tree = E.parse("gan_discriminator_loss(critic(z_prior), critic(z), w=beta * 2) + -kl")
    assert sorted(set(E.names(tree))) == ["beta", "critic", "gan_discriminator_loss", "kl", "z", "z_prior"]


@pytest.mark.parametrize("text, kind", [
    ("lambda: 1", "Lambda"),
    ("x[0]", "Subscript"),
    ("[i for i in x]", "ListComp"),
    ("{k: 1}", "Dict"),
    ("x if y else z", "IfExp"),
    ("a < b", "Compare"),
    ("a and b", "BoolOp"),
    ("not x", "UnaryOp"),
    ("a // b", "BinOp"),
    ("a @ b", "BinOp"),
    ("f'{x}'", "JoinedStr"),
    ("1j", "Constant"),
])
def test_rejects_everything_but_names_calls_attributes_literals_and_arithmetic(text, kind):
    with pytest.raises(E.ExprError) as exc:
        E.parse(text)
    msg = str(exc.value)
    assert msg.startswith(f"{kind} is not allowed in {text!r}")
    assert "names, calls, attributes" in msg


@pytest.mark.parametrize("text", ["f(*a)", "f(**k)"])
def test_rejects_star_arguments(text):
    with pytest.raises(E.ExprError, match=r"\*args and \*\*kwargs are not allowed"):
        E.parse(text)


@pytest.mark.parametrize("text, detail", [
    ("encoder(x", "'(' was never closed"),
    ("a +", "invalid syntax"),
    ("a = 1", "invalid syntax"),
    ("a; b", "invalid syntax"),
    ("", "invalid syntax"),
])
def test_syntax_errors_are_clear(text, detail):
    with pytest.raises(E.ExprError) as exc:
        E.parse(text)
    assert str(exc.value) == f"cannot parse {text!r}: {detail}"


def test_dunder_calls_are_just_names_and_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    tree = E.parse(f"__import__('os').system('touch {marker}')")
    assert tree == Call(Attr(Call(Name("__import__"), (Const("os"),), ()), "system"),
                        (Const(f"touch {marker}"),), ())
    assert not marker.exists()


@pytest.mark.parametrize("text", [
    "encoder(x)",
    "prior.sample(like=z)",
    "critic(x).logit",
    "gan_discriminator_loss(critic(z_prior), critic(z))",
    "a + b * c - d / e ** 2",
    "(a + b) * c",
    "(-x) ** 2",
    "(-3) ** 2",
    "-x ** 2",
    "a - -b",
    "-(a + b)",
    "f(-1, k=-2.5, s='x', l=[1, 'b'], n=None, t=True)",
])
def test_unparse_round_trips(text):
    tree = E.parse(text)
    assert E.parse(E.unparse(tree)) == tree


def test_unparse_keeps_the_meaning_of_negative_bases():
    # (-3) ** 2 == 9, -3 ** 2 == -9: the parentheses must survive a rename + unparse
    assert E.parse(E.unparse(E.parse("(-3) ** 2"))) == BinOp("**", Const(-3), Const(2))
    assert E.parse(E.unparse(E.parse("-3 ** 2"))) == Neg(BinOp("**", Const(3), Const(2)))
    assert E.parse(E.unparse(E.parse("(-x) ** 2"))) == BinOp("**", Neg(Name("x")), Const(2))


def test_rename_namespaces_names_and_component_callees():
    mapping = {n: f"vae.{n}" for n in ("encoder", "decoder", "prior", "q", "z", "p_x", "nll", "kl")}
    components = {"encoder", "decoder", "prior"}

    def r(text):
        return E.unparse(E.rename(E.parse(text), mapping, components))

    assert r("encoder(x)") == "vae.encoder(x)"           # x is a data field: not in the mapping
    assert r("q.rsample()") == "vae.q.rsample()"          # dotted callee: its head is renamed
    assert r("prior.sample(like=z)") == "vae.prior.sample(like=vae.z)"  # keyword names are not renamed
    assert r("nll(p_x, x)") == "nll(vae.p_x, x)"          # the op nll, although a value is called nll
    assert r("kl(q, prior)") == "kl(vae.q, vae.prior)"
    assert r("p_x.mean") == "vae.p_x.mean"                # attribute after a renamed head
    assert r("decoder(z).mean") == "vae.decoder(vae.z).mean"
    assert r("nll + 0.5 * kl") == "(vae.nll + (0.5 * vae.kl))"
    assert r("-kl") == "(-vae.kl)"
    assert r("concat([z, q.mean], dim=1)") == "concat([vae.z, vae.q.mean], dim=1)"


def test_rename_without_callables_leaves_every_bare_callee_alone():
    tree = E.rename(E.parse("encoder(z)"), {"encoder": "p.encoder", "z": "p.z"})
    assert tree == Call(Name("encoder"), (Name("p.z"),), ())
