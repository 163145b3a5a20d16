// The assistant's context for a long schema stays within its size budget: tables in full while they fit, then one line
// each, then only names, saying what was left out.
using DbStudio.Core.Access;
using DbStudio.Core.Assistant;
using DbStudio.Core.Catalog;

namespace DbStudio.Tests.Unit;

public class AssistantContextTests
{
    private static TableFacts Table(int i) => new(new TableInfo
    {
        Schema = "proj_x", Name = $"table_{i:D3}", Oid = (uint)(1000 + i), Kind = 'r',
        Columns = [new ColumnInfo("id", "bigint", 20, true, null, 1, false),
                   ..Enumerable.Range(1, 12).Select(c => new ColumnInfo($"column_{c}", "text", 25, false, null, null, false)),
                   new ColumnInfo("user_id", "uuid", 2950, false, null, null, false)],
    }, AccessSettings.Defaults("user_id"), []);

    [Fact]
    public void A_long_schema_is_summarised_within_the_budget()
    {
        var facts = new ProjectFacts("x", "http://localhost/db/x/rest", Enumerable.Range(0, 400).Select(Table).ToList());
        const int budget = 12_000;
        var text = AssistantContext.Tables(facts, budget);
        Assert.InRange(text.Length, budget / 2, budget + 300);
        Assert.Contains("### table_000", text); // the first tables in full
        Assert.Contains("Signed-in end users can read, update, delete their own rows (where `user_id` = their user id).", text);
        Assert.Contains("(The schema is long: the remaining tables in brief.)", text);
        Assert.Matches(@"- table_\d{3}\(id bigint pk, column_1 text", text); // then one line each
        Assert.Matches(@"- \d+ more tables, named: table_\d{3}, ", text); // then names only
        Assert.True(AssistantContext.SystemPrompt(facts, budget).Length < budget + 4_000);
    }

    [Fact]
    public void A_short_schema_is_given_in_full()
    {
        var facts = new ProjectFacts("x", "http://localhost/db/x/rest", [Table(1), Table(2)]);
        var text = AssistantContext.Tables(facts, 12_000);
        Assert.DoesNotContain("in brief", text);
        Assert.Contains("### table_001", text);
        Assert.Contains("### table_002", text);
        Assert.Contains("- `column_12` text", text);
    }
}
