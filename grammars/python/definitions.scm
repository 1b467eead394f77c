(function_definition name: (identifier) @name) @definition.function
(class_definition name: (identifier) @name) @definition.class
; Module-level constants and aliases (`TIMEOUT = 5`, `Handler = Callable[...]`).
(module (expression_statement (assignment left: (identifier) @name)) @definition.variable)
