(comment) @comment
(string_literal) @string
(raw_string_literal) @string
(char_literal) @string
(function_definition) @function
(lambda_expression) @function
(compound_statement) @block
(field_declaration_list) @block
