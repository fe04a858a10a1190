//! What a function says about a variable's declared type, for rules that need it
//! (`unsigned-compare`, `sizeof-pointer`).

use crate::analysis::syntax::Fields as _;
use tree_sitter::Node;

use crate::analysis::syntax::{self, declared_name};

/// How a variable is declared inside one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared<'t> {
    /// The type specifier (`unsigned int`, `size_t`, `struct foo`).
    pub type_node: Node<'t>,
    /// The declaration (or parameter) node, for evidence.
    pub declaration: Node<'t>,
    /// `*p`: a pointer. Arrays declared as parameters are pointers too.
    pub pointer: bool,
    /// `p[4]` declared in the body: a real array.
    pub array: bool,
}

/// Finds the single declaration of `name` among the parameters and locals of `function`;
/// `None` when there is none or several that disagree.
pub fn declared<'t>(function: Node<'t>, name: &str, source: &str) -> Option<Declared<'t>> {
    let mut found: Vec<Declared<'t>> = Vec::new();
    collect(function, name, source, false, &mut found);
    agreeing(&found, source)
}

/// The declaration of the field that `value` (`base->field` or `base.field`) reads, when `base`
/// is a parameter or local of `function` declared as a `struct` or `union` that the same file
/// defines: the code states the field's type. `None` when the type is defined elsewhere, or
/// defined more than once (under `#ifdef`) with different fields.
pub fn field_declared<'t>(
    function: Node<'t>,
    value: Node<'t>,
    source: &str,
) -> Option<Declared<'t>> {
    let base = syntax::strip_parens(value.field("argument")?);
    let field = value.field("field")?;
    if base.kind_name() != "identifier" {
        return None;
    }
    let arrow = source
        .get(base.end_byte()..field.start_byte())?
        .contains("->");
    let owner = declared(function, syntax::text(base, source), source)?;
    let tagged = owner.type_node;
    if owner.pointer != arrow
        || owner.array
        || !matches!(tagged.kind_name(), "struct_specifier" | "union_specifier")
    {
        return None;
    }
    let tag = syntax::text(tagged.field("name")?, source);
    let field = syntax::text(field, source);
    let root = syntax::root(function);
    let mut found: Vec<Declared<'t>> = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let defines = node.kind_name() == tagged.kind_name()
            && node
                .field("name")
                .is_some_and(|n| syntax::text(n, source) == tag);
        if let Some(body) = node.field("body").filter(|_| defines) {
            let mut cursor = body.walk();
            for member in body.named_children(&mut cursor) {
                let Some(type_node) = member.field("type") else {
                    continue;
                };
                let mut inner = member.walk();
                for declarator in member.children_by_field_name("declarator", &mut inner) {
                    let mut name = declarator;
                    while name.kind_name() != "field_identifier" {
                        match name.field("declarator") {
                            Some(d) => name = d,
                            None => break,
                        }
                    }
                    if name.kind_name() == "field_identifier" && syntax::text(name, source) == field
                    {
                        let (pointer, array) = shape(declarator);
                        found.push(Declared {
                            type_node,
                            declaration: member,
                            pointer,
                            array,
                        });
                    }
                }
            }
            continue;
        }
        // Types are defined at file scope and in functions, not inside expressions; and only
        // where the tag is written (a text search is far cheaper than walking the nodes).
        if node.kind_name().ends_with("_expression")
            || node.kind_name() == "comment"
            || !syntax::text(node, source).contains(tag)
        {
            continue;
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    agreeing(&found, source)
}

/// The first of `found` when every one has its shape and type (one declaration, or the same
/// one under several `#ifdef` branches); `None` when there is none or they disagree.
fn agreeing<'t>(found: &[Declared<'t>], source: &str) -> Option<Declared<'t>> {
    let first = *found.first()?;
    let agree = found.iter().all(|d| {
        d.pointer == first.pointer
            && d.array == first.array
            && syntax::text(d.type_node, source) == syntax::text(first.type_node, source)
    });
    agree.then_some(first)
}

fn collect<'t>(
    node: Node<'t>,
    name: &str,
    source: &str,
    in_params: bool,
    out: &mut Vec<Declared<'t>>,
) {
    let is_param = node.kind_name() == "parameter_declaration";
    if node.kind_name() == "declaration" || is_param {
        if let Some(type_node) = node.field("type") {
            let mut cursor = node.walk();
            for declarator in node.children_by_field_name("declarator", &mut cursor) {
                if declared_name(declarator).is_some_and(|n| syntax::text(n, source) == name) {
                    let (pointer, array) = shape(declarator);
                    out.push(Declared {
                        type_node,
                        declaration: node,
                        pointer: pointer || (array && (is_param || in_params)),
                        array: array && !(is_param || in_params),
                    });
                }
            }
        }
        return;
    }
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        // Declarations sit in blocks, `for` headers and parameter lists, not in expressions
        // (a GNU statement expression sits in parentheses).
        let kind = child.kind_name();
        if kind.ends_with("_expression") && kind != "parenthesized_expression"
            || matches!(kind, "string_literal" | "comment" | "number_literal")
        {
            continue;
        }
        collect(
            child,
            name,
            source,
            in_params || node.kind_name() == "parameter_list",
            out,
        );
    }
}

/// The shape of the declared variable: pointer, array, or neither. The declarator nearest the
/// name binds first, so `*p[4]` is an array (of pointers) and `(*p)[4]` a pointer (to an array).
fn shape(mut declarator: Node) -> (bool, bool) {
    let mut innermost = (false, false);
    loop {
        match declarator.kind_name() {
            "pointer_declarator" => innermost = (true, false),
            "array_declarator" => innermost = (false, true),
            "init_declarator" | "parenthesized_declarator" | "attributed_declarator" => {}
            _ => return innermost,
        }
        match declarator
            .field("declarator")
            .or_else(|| declarator.named_child(0))
        {
            Some(inner) => declarator = inner,
            None => return innermost,
        }
    }
}

/// True for the unsigned integer types C and the kernel use.
pub fn is_unsigned(type_text: &str) -> bool {
    let words: Vec<&str> = type_text.split_whitespace().collect();
    words.contains(&"unsigned")
        || matches!(
            words.as_slice(),
            ["size_t"
                | "u8"
                | "u16"
                | "u32"
                | "u64"
                | "__u8"
                | "__u16"
                | "__u32"
                | "__u64"
                | "uint8_t"
                | "uint16_t"
                | "uint32_t"
                | "uint64_t"
                | "uintptr_t"
                | "uint"
                | "ulong"
                | "ushort"
                | "u_int"
                | "u_long"
                | "__le16"
                | "__le32"
                | "__le64"
                | "__be16"
                | "__be32"
                | "__be64"
                | "gfp_t"
                | "dma_addr_t"]
        )
}

/// The return type of a function definition, and whether it returns a pointer.
pub fn return_type<'t>(function: Node<'t>, source: &'t str) -> (&'t str, bool) {
    let type_text = function
        .field("type")
        .map_or("", |t| syntax::text(t, source));
    let pointer = function
        .field("declarator")
        .is_some_and(|d| d.kind_name() == "pointer_declarator");
    (type_text, pointer)
}

/// True when a function returns a signed integer (`int`, `long`, `ssize_t`): the kind of
/// function that reports errors as negative numbers.
pub fn returns_signed_int(function: Node, source: &str) -> bool {
    let (type_text, pointer) = return_type(function, source);
    !pointer
        && matches!(
            type_text,
            "int" | "long" | "long int" | "ssize_t" | "long long" | "s32" | "s64"
        )
}
