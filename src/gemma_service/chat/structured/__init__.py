"""Structured output and tool calling: JSON Schema → llama.cpp grammars, the tool-call prompt
format, and parsing of calls from model text (whole or streamed) in each family's call syntax
(our JSON form for Gemma 3, Gemma 4's own). Pure Python: no llama_cpp.
"""

from gemma_service.chat.structured.call_syntax import (
    GEMMA4_CALL_CLOSE,
    GEMMA4_CALL_OPEN,
    GEMMA4_CALLS,
    JSON_CALLS,
    ToolCallSyntax,
)
from gemma_service.chat.structured.json_grammar import (
    JSON_OBJECT_GBNF,
    check_schema,
    response_format_grammar,
    schema_to_gbnf,
    validate_instance,
)
from gemma_service.chat.structured.tool_call_parser import (
    ContentDelta,
    StreamDelta,
    ToolCallDelta,
    ToolCallStreamParser,
    parse_tool_calls,
)
from gemma_service.chat.structured.tool_history import messages_to_turns
from gemma_service.chat.structured.tool_specs import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    FunctionTool,
    ToolCall,
    ToolChoice,
    format_tool_call,
    format_tool_result,
    new_tool_call_id,
    parse_tool_choice,
    parse_tools,
)
from gemma_service.chat.structured.tools import (
    MAX_PARALLEL_CALLS,
    render_tool_instructions,
    tool_call_grammar,
)

__all__ = [
    "GEMMA4_CALLS",
    "GEMMA4_CALL_CLOSE",
    "GEMMA4_CALL_OPEN",
    "JSON_CALLS",
    "JSON_OBJECT_GBNF",
    "MAX_PARALLEL_CALLS",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "ContentDelta",
    "FunctionTool",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStreamParser",
    "ToolCallSyntax",
    "ToolChoice",
    "check_schema",
    "format_tool_call",
    "format_tool_result",
    "messages_to_turns",
    "new_tool_call_id",
    "parse_tool_calls",
    "parse_tool_choice",
    "parse_tools",
    "render_tool_instructions",
    "response_format_grammar",
    "schema_to_gbnf",
    "tool_call_grammar",
    "validate_instance",
]
