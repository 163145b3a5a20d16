// Splits SQL text written by a person into statements at top-level semicolons, the way psql does:
// quotes, quoted identifiers, E'' escapes, dollar quotes, line and nested block comments are respected.
namespace DbStudio.Core.Sql;

/// <summary>One statement of a script: its text and where it starts in the script (0-based).</summary>
public readonly record struct ScriptStatement(string Text, int Offset);

public static class StatementSplitter
{
    public static List<ScriptStatement> Split(string script)
    {
        var result = new List<ScriptStatement>();
        var start = 0;
        var i = 0;
        var n = script.Length;
        var parenDepth = 0;
        var beginDepth = 0; // BEGIN ATOMIC … END bodies (SQL-standard function bodies) contain semicolons
        while (i < n)
        {
            var c = script[i];
            if (c == '-' && i + 1 < n && script[i + 1] == '-')
            {
                while (i < n && script[i] != '\n') i++;
                continue;
            }
            if (c == '/' && i + 1 < n && script[i + 1] == '*')
            {
                var depth = 1;
                i += 2;
                while (i < n && depth > 0)
                {
                    if (script[i] == '/' && i + 1 < n && script[i + 1] == '*') { depth++; i += 2; }
                    else if (script[i] == '*' && i + 1 < n && script[i + 1] == '/') { depth--; i += 2; }
                    else i++;
                }
                continue;
            }
            if (c == '\'')
            {
                var backslashEscapes = i > 0 && (script[i - 1] == 'E' || script[i - 1] == 'e') &&
                                       (i < 2 || !IsIdentChar(script[i - 2]));
                i = SkipQuoted(script, i, '\'', backslashEscapes);
                continue;
            }
            if (c == '"') { i = SkipQuoted(script, i, '"', false); continue; }
            if (c == '$' && (i == 0 || !IsIdentChar(script[i - 1])) && TryDollarTag(script, i, out var tag))
            {
                var close = script.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                i = close < 0 ? n : close + tag.Length;
                continue;
            }
            if (c == '(') parenDepth++;
            else if (c == ')' && parenDepth > 0) parenDepth--;
            else if (IsIdentStart(c) && (i == 0 || !IsIdentChar(script[i - 1])))
            {
                var j = i;
                while (j < n && IsIdentChar(script[j])) j++;
                var word = script.AsSpan(i, j - i);
                if (word.Equals("atomic", StringComparison.OrdinalIgnoreCase) && PrecededByBegin(script, i)) beginDepth++;
                else if (beginDepth > 0 && (word.Equals("case", StringComparison.OrdinalIgnoreCase))) beginDepth++;
                else if (beginDepth > 0 && word.Equals("end", StringComparison.OrdinalIgnoreCase)) beginDepth--;
                i = j;
                continue;
            }
            else if (c == ';' && parenDepth == 0 && beginDepth == 0)
            {
                Add(result, script, start, i);
                start = i + 1;
            }
            i++;
        }
        Add(result, script, start, n);
        return result;
    }

    private static bool PrecededByBegin(string s, int atomicStart)
    {
        var k = atomicStart - 1;
        while (k >= 0 && char.IsWhiteSpace(s[k])) k--;
        var end = k + 1;
        while (k >= 0 && IsIdentChar(s[k])) k--;
        return s.AsSpan(k + 1, end - k - 1).Equals("begin", StringComparison.OrdinalIgnoreCase);
    }

    private static void Add(List<ScriptStatement> result, string script, int from, int to)
    {
        var text = script[from..to];
        if (!HasCode(text)) return;
        // Trim leading whitespace but keep the offset exact, so error positions map onto the script.
        var lead = 0;
        while (lead < text.Length && char.IsWhiteSpace(text[lead])) lead++;
        result.Add(new ScriptStatement(text[lead..].TrimEnd(), from + lead));
    }

    /// <summary>True when the text holds something other than whitespace and comments.</summary>
    private static bool HasCode(string text)
    {
        var i = 0;
        while (i < text.Length)
        {
            if (char.IsWhiteSpace(text[i])) { i++; continue; }
            if (text[i] == '-' && i + 1 < text.Length && text[i + 1] == '-')
            {
                while (i < text.Length && text[i] != '\n') i++;
                continue;
            }
            if (text[i] == '/' && i + 1 < text.Length && text[i + 1] == '*')
            {
                var close = text.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (close < 0) return false;
                i = close + 2;
                continue;
            }
            return true;
        }
        return false;
    }

    private static int SkipQuoted(string s, int i, char quote, bool backslashEscapes)
    {
        i++;
        while (i < s.Length)
        {
            if (backslashEscapes && s[i] == '\\') { i += 2; continue; }
            if (s[i] == quote)
            {
                if (i + 1 < s.Length && s[i + 1] == quote) { i += 2; continue; }
                return i + 1;
            }
            i++;
        }
        return s.Length;
    }

    private static bool TryDollarTag(string s, int i, out string tag)
    {
        var j = i + 1;
        while (j < s.Length && s[j] != '$')
        {
            if (!IsIdentChar(s[j]) || (j == i + 1 && char.IsDigit(s[j]))) { tag = ""; return false; }
            j++;
        }
        if (j >= s.Length) { tag = ""; return false; }
        tag = s[i..(j + 1)];
        return true;
    }

    private static bool IsIdentStart(char c) => char.IsLetter(c) || c == '_';
    private static bool IsIdentChar(char c) => char.IsLetterOrDigit(c) || c == '_' || c == '$';
}
