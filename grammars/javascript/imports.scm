(import_statement source: (string) @path) @import
(export_statement source: (string) @path) @import
(call_expression
  function: (identifier) @_require
  arguments: (arguments . (string) @path)
  (#eq? @_require "require")) @import
