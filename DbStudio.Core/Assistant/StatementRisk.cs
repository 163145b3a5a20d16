// Sorts the statements of an assistant's <sql> block into reads, writes and destructive changes, to decide what may run
// at once, what needs a click and what needs a typed confirmation. A UX guard only: it protects a person from running a
// destructive statement by mistake, not the server. Confinement is PostgreSQL's — the block runs on the project owner's
// own login with that role's rights (Console/SqlConsole), exactly what the person could type in the SQL tab — and reads
// that run at once are also run in a READ ONLY transaction, so a "read" that writes (a function with side effects) fails.
using DbStudio.Core.Sql;

namespace DbStudio.Core.Assistant;

public enum RiskLevel { Read = 0, Write = 1, Destructive = 2 }

/// <summary>
/// How risky a block is (its riskiest statement), why, and for a destructive one the word the person must type
/// (the object it names, or the verb when it names none).
/// </summary>
public sealed record BlockRisk(RiskLevel Level, string? Reason, string? ConfirmWord);

public static class StatementRisk
{
    /// <summary>What a dollar-quote tag may be made of.</summary>
    private static readonly System.Buffers.SearchValues<char> TagCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

    private static readonly HashSet<string> ReadStarts = ["select", "with", "table", "values", "show", "explain"];
    private static readonly HashSet<string> Modifying = ["insert", "update", "delete", "merge", "into", "truncate", "drop", "alter",
        "create", "grant", "revoke", "copy", "call", "do", "analyze", "lock", "set", "reset", "vacuum", "refresh", "comment", "nextval", "setval"];
    /// <summary>Words between a destructive verb and the name of what it changes.</summary>
    private static readonly HashSet<string> Filler = ["table", "view", "materialized", "index", "schema", "function", "procedure",
        "sequence", "type", "trigger", "policy", "if", "exists", "only", "from", "concurrently", "domain", "extension", "role", "cascade",
        "restrict", "column", "constraint", "owned", "by", "user", "aggregate", "rule", "on", "drop", "alter", "truncate", "delete",
        "update", "with", "recursive"];

    /// <summary>The riskiest statement of the block decides. An empty block reads.</summary>
    public static BlockRisk Classify(string block)
    {
        var worst = new BlockRisk(RiskLevel.Read, null, null);
        foreach (var stmt in StatementSplitter.Split(block))
        {
            var r = ClassifyStatement(stmt.Text);
            if (r.Level > worst.Level) worst = r;
        }
        return worst;
    }

    public static BlockRisk ClassifyStatement(string statement)
    {
        var tokens = Tokens(statement);
        if (tokens.Count == 0) return new BlockRisk(RiskLevel.Read, null, null);
        var first = tokens[0].Word;
        var topLevel = tokens.Where(t => t.Depth == 0).Select(t => t.Word).ToList();
        string Target(string verb) => tokens.Skip(1).Select(t => t.Word).FirstOrDefault(w => !Filler.Contains(w)) ?? verb;

        if (first is "drop") return new BlockRisk(RiskLevel.Destructive, "DROP removes the object and everything in it", Target("drop"));
        if (first is "truncate") return new BlockRisk(RiskLevel.Destructive, "TRUNCATE removes every row", Target("truncate"));
        if (first is "alter" && topLevel.Contains("drop")) return new BlockRisk(RiskLevel.Destructive, "ALTER … DROP removes part of a table", Target("alter"));
        // DELETE/UPDATE, also inside WITH: a filter at the statement's own level (not one in a sub-select) makes it a write.
        var verb = topLevel.FirstOrDefault(w => w is "delete" or "update");
        if (verb is not null && first is "delete" or "update" or "with")
        {
            var afterVerb = topLevel.SkipWhile(w => w != verb).ToList();
            if (!afterVerb.Contains("where"))
            {
                var target = afterVerb.Skip(1).FirstOrDefault(w => !Filler.Contains(w)) ?? verb;
                return new BlockRisk(RiskLevel.Destructive, $"{verb.ToUpperInvariant()} without WHERE changes every row", target);
            }
            return new BlockRisk(RiskLevel.Write, null, null);
        }
        if (ReadStarts.Contains(first) && !tokens.Any(t => Modifying.Contains(t.Word))
            && !(first == "explain" && tokens.Any(t => t.Word == "analyze"))
            && !(topLevel.Contains("for") && topLevel.Any(w => w is "update" or "share")))
            return new BlockRisk(RiskLevel.Read, null, null);
        return new BlockRisk(RiskLevel.Write, null, null);
    }

    private readonly record struct Token(string Word, int Depth);

    /// <summary>
    /// Lower-case words and their parenthesis depth, skipping comments, string literals and dollar-quoted bodies; a quoted
    /// identifier is a word (as written, quotes dropped) so names are kept.
    /// </summary>
    private static List<Token> Tokens(string sql)
    {
        var tokens = new List<Token>();
        var depth = 0;
        var i = 0;
        var n = sql.Length;
        while (i < n)
        {
            var c = sql[i];
            if (c == '-' && i + 1 < n && sql[i + 1] == '-') { while (i < n && sql[i] != '\n') i++; continue; }
            if (c == '/' && i + 1 < n && sql[i + 1] == '*')
            {
                var d = 1; i += 2;
                while (i < n && d > 0)
                {
                    if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') { d++; i += 2; }
                    else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') { d--; i += 2; }
                    else i++;
                }
                continue;
            }
            if (c == '\'')
            {
                i++;
                while (i < n) { if (sql[i] == '\'') { if (i + 1 < n && sql[i + 1] == '\'') i += 2; else break; } else if (sql[i] == '\\') i += 2; else i++; }
                i++;
                continue;
            }
            if (c == '"')
            {
                var end = sql.IndexOf('"', i + 1);
                if (end < 0) end = n;
                tokens.Add(new Token(sql[(i + 1)..end], depth));
                i = end + 1;
                continue;
            }
            if (c == '$')
            {
                var close = sql.IndexOf('$', i + 1);
                if (close > i && sql.AsSpan(i + 1, close - i - 1).IndexOfAnyExcept(TagCharacters) < 0)
                {
                    var tag = sql[i..(close + 1)];
                    var end = sql.IndexOf(tag, close + 1, StringComparison.Ordinal);
                    i = end < 0 ? n : end + tag.Length;
                    continue;
                }
                i++;
                continue;
            }
            if (c == '(') { depth++; i++; continue; }
            if (c == ')') { depth = Math.Max(0, depth - 1); i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                var start = i;
                while (i < n && (char.IsLetterOrDigit(sql[i]) || sql[i] is '_' or '$')) i++;
                tokens.Add(new Token(sql[start..i].ToLowerInvariant(), depth));
                continue;
            }
            i++;
        }
        return tokens;
    }
}
