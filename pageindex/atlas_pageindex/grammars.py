"""The grammars ``outline`` reads: which file suffix is which language, each language's declaration query, and
the compiled Language and Query per grammar (built once per process, on first use)."""

from __future__ import annotations

import functools

import tree_sitter as ts

GRAMMAR_BY_SUFFIX = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
}  # fmt: skip

# Queries: @class and @function are declarations; @scope marks anonymous functions (and anonymous classes)
# whose contents stay out of the outline. A node captured twice keeps its declaration role.
_JS_FUNCTION_VALUES = "[(arrow_function) (function_expression) (generator_function)]"
_JS_COMMON = f"""
[(class_declaration) (class)] @class
[(function_declaration) (generator_function_declaration)] @function
(class_body (method_definition) @function)
(variable_declarator value: {_JS_FUNCTION_VALUES} @function)
[(arrow_function) (function_expression) (generator_function) (method_definition)] @scope
"""
_TS_QUERY = f"""{_JS_COMMON}
[(abstract_class_declaration) (interface_declaration) (enum_declaration)] @class
(function_signature) @function
(class_body [(abstract_method_signature) (method_signature)] @function)
(interface_body (method_signature) @function)
(class_body (public_field_definition value: {_JS_FUNCTION_VALUES} @function))
"""
QUERIES = {
    "python": "(class_definition) @class (function_definition) @function",
    "javascript": f"{_JS_COMMON}(class_body (field_definition value: {_JS_FUNCTION_VALUES} @function))",
    "typescript": _TS_QUERY,
    "tsx": _TS_QUERY,
    "go": """
        (type_spec type: [(struct_type) (interface_type)]) @class
        [(function_declaration) (method_declaration)] @function
        (interface_type (method_elem) @function)
        (func_literal) @scope""",
    "rust": """
        [(struct_item) (enum_item) (union_item) (trait_item) (impl_item)] @class
        [(function_item) (function_signature_item)] @function
        (closure_expression) @scope""",
    "java": """
        [(class_declaration) (interface_declaration) (enum_declaration) (record_declaration)
         (annotation_type_declaration)] @class
        [(method_declaration) (constructor_declaration) (compact_constructor_declaration)] @function
        [(lambda_expression) (object_creation_expression) (enum_constant)] @scope""",
    "c": """
        [(struct_specifier body: (_)) (union_specifier body: (_))] @class
        (function_definition) @function""",
    "cpp": """
        [(class_specifier body: (_)) (struct_specifier body: (_)) (union_specifier body: (_))
         (namespace_definition)] @class
        (function_definition) @function
        (lambda_expression) @scope""",
}

# Parents that belong to a declaration: they widen its line range and, when True, start its signature
# (`export const f = () =>`, `template <class T> T max(T a, T b)`). Decorators widen the range only.
JS_WRAPPERS = {
    "export_statement": True, "variable_declarator": True, "lexical_declaration": True,
    "variable_declaration": True, "field_definition": True, "public_field_definition": True,
    "ambient_declaration": True,
}  # fmt: skip
WRAPPERS: dict[str, dict[str, bool]] = {
    "python": {"decorated_definition": False},
    "javascript": JS_WRAPPERS,
    "typescript": JS_WRAPPERS,
    "tsx": JS_WRAPPERS,
    "go": {"type_declaration": True},
    "c": {"type_definition": True},
    "cpp": {"template_declaration": True, "type_definition": True},
}
COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
# Siblings above a declaration that belong to it, like Python's decorators: Rust `#[derive(..)]`, and
# TypeScript method decorators (class bodies hold them beside the method, not inside it).
ATTRIBUTES = frozenset({"attribute_item", "decorator"})
C_DECLARATORS = frozenset(
    {"function_declarator", "pointer_declarator", "reference_declarator", "parenthesized_declarator",
     "attributed_declarator"}
)  # fmt: skip


def grammar_of(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return GRAMMAR_BY_SUFFIX.get(name[dot:].lower()) if dot > 0 else None


@functools.cache
def language(grammar: str) -> ts.Language:
    # Imported on first use: each grammar is a compiled extension, and most processes read a few languages.
    if grammar == "python":
        import tree_sitter_python as python

        return ts.Language(python.language())
    if grammar == "javascript":
        import tree_sitter_javascript as javascript

        return ts.Language(javascript.language())
    if grammar in ("typescript", "tsx"):
        import tree_sitter_typescript as typescript

        return ts.Language(typescript.language_tsx() if grammar == "tsx" else typescript.language_typescript())
    if grammar == "go":
        import tree_sitter_go as go

        return ts.Language(go.language())
    if grammar == "rust":
        import tree_sitter_rust as rust

        return ts.Language(rust.language())
    if grammar == "java":
        import tree_sitter_java as java

        return ts.Language(java.language())
    if grammar == "c":
        import tree_sitter_c as c

        return ts.Language(c.language())
    if grammar == "cpp":
        import tree_sitter_cpp as cpp

        return ts.Language(cpp.language())
    raise ValueError(f"no grammar {grammar!r}")


@functools.cache
def query(grammar: str) -> ts.Query:
    return ts.Query(language(grammar), QUERIES[grammar])
