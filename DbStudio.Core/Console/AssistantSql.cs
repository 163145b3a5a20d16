// Runs the <sql>…</sql> blocks of an AI assistant's message through the console, in order, stopping at the first error.
using System.Text.RegularExpressions;

namespace DbStudio.Core.Console;

public sealed record AssistantBlock(string Sql, List<StatementResult> Results);
public sealed record AssistantRun(List<AssistantBlock> Blocks, int? StoppedAt);

public sealed partial class AssistantSql(SqlConsole console)
{
    [GeneratedRegex(@"<sql>(.*?)</sql>", RegexOptions.Singleline | RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Block();

    /// <summary>The text inside each &lt;sql&gt;…&lt;/sql&gt; pair, in order; blank blocks are skipped.</summary>
    public static List<string> ExtractBlocks(string text) =>
        Block().Matches(text).Select(m => m.Groups[1].Value.Trim()).Where(s => s.Length > 0).ToList();

    public async Task<AssistantRun> RunAsync(string projectId, string text, CancellationToken ct = default)
    {
        var blocks = new List<AssistantBlock>();
        foreach (var sql in ExtractBlocks(text))
        {
            var results = await console.RunAsync(projectId, sql, ct, SqlSource.Assistant);
            blocks.Add(new AssistantBlock(sql, results));
            if (results.Any(r => r.Error is not null)) return new AssistantRun(blocks, blocks.Count - 1);
        }
        return new AssistantRun(blocks, null);
    }
}
