//! Quick fixes, checked by their result: apply the first fix of the finding and compare the
//! whole function with what a kernel developer would write.

use aidiag::analysis::{check_text, fix, CheckOptions, Fix};

/// The fixes offered for the only finding of `rule` in `source`.
fn fixes(source: &str, rule: &str) -> Vec<Fix> {
    let findings: Vec<_> = check_text(source, CheckOptions { fixes: true })
        .into_iter()
        .filter(|f| f.rule == rule)
        .collect();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.into_iter().next().unwrap().fixes
}

fn applied(source: &str, fix: &Fix) -> String {
    fix::apply(source, 0, fix).unwrap()
}

const LADDER: &str = "\
static int foo_load(struct foo *foo)
{
\tchar *buf;
\tint ret;

\tbuf = kmalloc(64, GFP_KERNEL);
\tif (!buf)
\t\treturn -ENOMEM;
\tif (foo->broken)
\t\treturn -EINVAL;
\tret = foo_read(foo, buf);
\tif (ret)
\t\tgoto err_free;
\tfoo_apply(foo, buf);
\tret = 0;
err_free:
\tkfree(buf);
\treturn ret;
}
";

#[test]
fn an_early_return_jumps_to_the_ladder_that_frees() {
    let offered = fixes(LADDER, "leak-on-error");
    let titles: Vec<_> = offered
        .iter()
        .map(|f| (f.title.as_str(), f.preferred))
        .collect();
    assert_eq!(
        titles,
        [
            ("Jump to `err_free`, which frees `buf`", true),
            ("Free `buf` before leaving", false),
            ("Suppress leak-on-error here", false),
        ]
    );
    let fixed = applied(LADDER, &offered[0]);
    assert!(
        fixed.contains("\tif (foo->broken) {\n\t\tret = -EINVAL;\n\t\tgoto err_free;\n\t}\n"),
        "{fixed}"
    );
    let inline = applied(LADDER, &offered[1]);
    assert!(
        inline.contains("\tif (foo->broken) {\n\t\tkfree(buf);\n\t\treturn -EINVAL;\n\t}\n"),
        "{inline}"
    );
}

#[test]
fn a_goto_that_skips_the_free_is_retargeted() {
    let source = "\
static int bar_attach(struct bar *bar)
{
\tstruct bar_state *st;
\tint err;

\tmutex_lock(&bar->lock);
\tst = kzalloc(sizeof(*st), GFP_KERNEL);
\tif (!st) {
\t\terr = -ENOMEM;
\t\tgoto out_unlock;
\t}
\terr = bar_hw_init(bar);
\tif (err)
\t\tgoto out_unlock;
\tbar->state = st;
\tmutex_unlock(&bar->lock);
\treturn 0;

err_free:
\tkfree(st);
out_unlock:
\tmutex_unlock(&bar->lock);
\treturn err;
}
";
    let offered = fixes(source, "leak-on-error");
    assert_eq!(
        offered[0].title,
        "Jump to `err_free`, which frees `st` on the way to `out_unlock`"
    );
    let fixed = applied(source, &offered[0]);
    assert!(
        fixed.contains("\tif (err)\n\t\tgoto err_free;\n"),
        "{fixed}"
    );
    // The first `goto out_unlock` (st is NULL there) is left alone.
    assert!(
        fixed.contains("\t\terr = -ENOMEM;\n\t\tgoto out_unlock;\n"),
        "{fixed}"
    );
}

#[test]
fn a_ladder_that_does_more_than_free_is_not_jumped_to_from_a_return() {
    // Jumping from before the lock is taken to a ladder that unlocks would be wrong.
    let source = "\
static int baz_set(struct baz *baz, int v)
{
\tchar *buf = kmalloc(16, GFP_KERNEL);
\tint ret = 0;

\tif (!buf)
\t\treturn -ENOMEM;
\tif (v < 0)
\t\treturn -EINVAL;
\tmutex_lock(&baz->lock);
\tret = baz_write(baz, buf, v);
\tmutex_unlock(&baz->lock);
err:
\tkfree(buf);
\tmutex_unlock(&baz->lock);
\treturn ret;
}
";
    let offered = fixes(source, "leak-on-error");
    assert_eq!(offered[0].title, "Free `buf` before leaving");
    assert!(offered[0].preferred);
}

#[test]
fn mechanical_fixes_of_the_syntactic_rules() {
    let cases = [
        (
            "size-overflow",
            "int f(struct s *s, int n)\n{\n\ts->v = kzalloc(n * sizeof(*s->v), GFP_KERNEL);\n\treturn s->v ? 0 : -ENOMEM;\n}\n",
            "\ts->v = kcalloc(n, sizeof(*s->v), GFP_KERNEL);\n",
        ),
        (
            "copy-user-return",
            "long f(void __user *p, struct s *s)\n{\n\treturn copy_to_user(p, s, sizeof(*s));\n}\n",
            "\treturn copy_to_user(p, s, sizeof(*s)) ? -EFAULT : 0;\n",
        ),
        (
            "off-by-one",
            "int f(int k)\n{\n\tint i;\n\n\tfor (i = 0; i <= ARRAY_SIZE(t); i++)\n\t\tif (t[i] == k)\n\t\t\treturn i;\n\treturn -1;\n}\n",
            "\tfor (i = 0; i < ARRAY_SIZE(t); i++)\n",
        ),
        (
            "double-free",
            "void f(struct s *s)\n{\n\tkfree(s->buf);\n\tkfree(s->buf);\n}\n",
            "\tkfree(s->buf);\n\ts->buf = NULL;\n\tkfree(s->buf);\n",
        ),
        (
            "lock-imbalance",
            "int f(struct s *s)\n{\n\tspin_lock_irqsave(&s->lock, flags);\n\tif (s->dead)\n\t\treturn -ENODEV;\n\tspin_unlock_irqrestore(&s->lock, flags);\n\treturn 0;\n}\n",
            "\tif (s->dead) {\n\t\tspin_unlock_irqrestore(&s->lock, flags);\n\t\treturn -ENODEV;\n\t}\n",
        ),
        (
            "unchecked-alloc",
            "int f(struct s *s)\n{\n\tstruct c *c = kzalloc(sizeof(*c), GFP_KERNEL);\n\n\tc->s = s;\n\ts->c = c;\n\treturn 0;\n}\n",
            "\tstruct c *c = kzalloc(sizeof(*c), GFP_KERNEL);\n\tif (!c)\n\t\treturn -ENOMEM;\n",
        ),
        (
            "sizeof-pointer",
            "int f(struct s *s)\n{\n\tstruct c *c = kzalloc(sizeof(c), GFP_KERNEL);\n\n\tif (!c)\n\t\treturn -ENOMEM;\n\ts->c = c;\n\treturn 0;\n}\n",
            "kzalloc(sizeof(*c), GFP_KERNEL)",
        ),
        (
            "assignment-in-condition",
            "int f(struct s *s)\n{\n\tif (s->state = 3)\n\t\treturn 1;\n\treturn 0;\n}\n",
            "\tif (s->state == 3)\n",
        ),
    ];
    for (rule, source, expected) in cases {
        let offered = fixes(source, rule);
        assert!(offered[0].preferred, "{rule}: {offered:#?}");
        let fixed = applied(source, &offered[0]);
        assert!(
            fixed.contains(expected),
            "{rule}: expected {expected:?} in\n{fixed}"
        );
    }
}
