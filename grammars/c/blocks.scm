(comment) @comment
(string_literal) @string
(char_literal) @string
(function_definition) @function
(compound_statement) @block
(field_declaration_list) @block
