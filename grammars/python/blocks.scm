(comment) @comment
(string) @string
(function_definition) @function
(lambda) @function
(block) @block
