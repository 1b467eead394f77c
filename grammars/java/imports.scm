(import_declaration (scoped_identifier) @path) @import
(import_declaration (identifier) @path) @import
