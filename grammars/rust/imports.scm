(use_declaration argument: (_) @path) @import
; `mod foo;` pulls in foo.rs or foo/mod.rs.
(mod_item name: (identifier) @path !body) @import
(extern_crate_declaration name: (identifier) @path) @import
