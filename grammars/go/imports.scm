(import_spec path: (interpreted_string_literal) @path) @import
