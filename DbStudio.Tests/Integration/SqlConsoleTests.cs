// The confined SQL engine's behaviour on a real PostgreSQL: one result per statement, true row counts,
// the row cap, the app-side deadline, errors as data with positions in the script, and no state leaking between runs.
using System.Diagnostics;
using System.Text.Json;
using DbStudio.Core.Console;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Integration;

public class SqlConsoleTests(TestApp app)
{
    private async Task<(HttpClient Client, string Id)> ProjectAsync()
    {
        var client = await app.NewUserClientAsync();
        return (client, (await TestApp.CreateProjectAsync(client)).Id);
    }

    [Fact]
    public async Task Each_statement_gets_its_own_result_with_command_and_row_count()
    {
        var (c, id) = await ProjectAsync();
        var r = await TestApp.SqlAsync(c, id, """
            create table items (id serial primary key, name text not null, price numeric(12,2), tags jsonb, at timestamptz);
            insert into items (name, price, tags, at) values ('a', 1.10, '["x"]', '2024-01-02T03:04:05Z'), ('b', null, null, null);
            update items set name = name || '!' where true;
            select id, name, price, tags, at, null::text as nothing from items order by id;
            delete from items where id = 2
            """);
        Assert.Equal(5, r.Length);
        Assert.Equal(["CREATE TABLE", "INSERT", "UPDATE", "SELECT", "DELETE"], r.Select(x => x.GetProperty("command").GetString()));
        Assert.Equal([0L, 2, 2, 2, 1], r.Select(x => x.GetProperty("rowCount").GetInt64()));
        var select = r[3];
        Assert.Equal(["integer", "text", "numeric(12, 2)", "jsonb", "timestamp with time zone", "text"],
            select.GetProperty("columns").EnumerateArray().Select(col => col.GetProperty("type").GetString()));
        var row = select.GetProperty("rows")[0];
        Assert.Equal(1, row[0].GetInt32());
        Assert.Equal("a!", row[1].GetString());
        Assert.Equal("1.10", row[2].GetRawText()); // exact, as PostgreSQL prints it
        Assert.Equal(JsonValueKind.Array, row[3].ValueKind);
        Assert.StartsWith("2024-01-02 03:04:05", row[4].GetString());
        Assert.Equal(JsonValueKind.Null, row[5].ValueKind);
    }

    [Fact]
    public async Task Errors_are_data_with_sqlstate_and_a_position_in_the_whole_script()
    {
        var (c, id) = await ProjectAsync();
        const string script = "select 1;\nselect nosuchcolumn from (select 1) s; select 3";
        var r = await TestApp.SqlAsync(c, id, script);
        Assert.Equal(2, r.Length); // stops at the first error
        var e = r[1].GetProperty("error");
        Assert.Equal("42703", e.GetString("code"));
        Assert.Contains("nosuchcolumn", e.GetString("message"));
        var pos = e.GetProperty("position").GetInt32();
        Assert.Equal("nosuchcolumn", script.Substring(pos - 1, "nosuchcolumn".Length));
    }

    [Fact]
    public async Task Row_cap_keeps_1000_rows_and_reports_the_true_count()
    {
        var (c, id) = await ProjectAsync();
        var r = await TestApp.SqlAsync(c, id, "select g, md5(g::text) from generate_series(1, 25000) g");
        Assert.Equal(1000, r[0].GetProperty("rows").GetArrayLength());
        Assert.Equal(25000, r[0].GetProperty("rowCount").GetInt64());
        Assert.True(r[0].GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task A_hundred_million_row_select_returns_quickly_with_a_clear_cancel()
    {
        var (c, id) = await ProjectAsync();
        var sw = Stopwatch.StartNew();
        var r = await TestApp.SqlAsync(c, id, "select * from generate_series(1, 1e8)");
        sw.Stop();
        // The test app's deadline is 5 s: either PostgreSQL finished and we counted every row, or it was canceled.
        if (r[0].TryGetProperty("error", out var e))
        {
            Assert.Equal("57014", e.GetString("code"));
            Assert.Contains("limit", e.GetString("message"));
        }
        else Assert.Equal(100_000_000, r[0].GetProperty("rowCount").GetInt64());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task The_deadline_holds_even_when_the_user_turns_statement_timeout_off()
    {
        var (c, id) = await ProjectAsync();
        var sw = Stopwatch.StartNew();
        var r = await TestApp.SqlAsync(c, id, "set statement_timeout = 0; select pg_sleep(60)");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"took {sw.Elapsed}");
        Assert.Equal("57014", r[1].GetProperty("error").GetString("code"));
        // The pool's connection is fine afterwards.
        var again = await TestApp.SqlAsync(c, id, "select 42");
        Assert.Equal(42, again[0].GetProperty("rows")[0][0].GetInt32());
    }

    [Fact]
    public async Task Transactions_work_within_a_script_and_never_leak_into_the_next_run()
    {
        var (c, id) = await ProjectAsync();
        var r = await TestApp.SqlAsync(c, id, "create table t (x int); begin; insert into t values (1); rollback; select count(*) from t");
        Assert.Equal(0, r[^1].GetProperty("rows")[0][0].GetInt32());
        // An open transaction and a session setting left behind by one run…
        await TestApp.SqlAsync(c, id, "begin; insert into t values (2); set search_path = pg_catalog");
        // …are gone in the next: the insert was rolled back and search_path is the project's again.
        var next = await TestApp.SqlAsync(c, id, "select count(*), current_schema() from t");
        Assert.Equal(0, next[0].GetProperty("rows")[0][0].GetInt32());
        Assert.Equal($"proj_{id}", next[0].GetProperty("rows")[0][1].GetString());
    }

    [Fact]
    public async Task Empty_and_comment_only_scripts_give_no_results_and_huge_scripts_a_clear_error()
    {
        var (c, id) = await ProjectAsync();
        Assert.Empty(await TestApp.SqlAsync(c, id, "  -- nothing here\n"));
        var huge = await TestApp.SqlAsync(c, id, "select 1 " + new string(' ', 1_000_001));
        Assert.Equal("54000", huge[0].GetProperty("error").GetString("code"));
    }

    [Fact]
    public async Task A_user_cancel_stops_the_running_statement()
    {
        var (c, id) = await ProjectAsync();
        var console = app.Service<SqlConsole>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var sw = Stopwatch.StartNew();
        var results = await console.RunAsync(id, "select pg_sleep(30)", cts.Token);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Equal("57014", results[0].Error!.Code);
        Assert.Contains("your request", results[0].Error!.Message);
    }

    [Fact]
    public async Task Assistant_blocks_run_in_order_and_stop_at_the_first_error()
    {
        var (c, id) = await ProjectAsync();
        var res = await c.PostAsJsonAsync($"/api/projects/{id}/assistant/sql", new
        {
            text = "Sure!\n<sql>create table notes (id serial primary key, body text);</sql>\nthen\n" +
                   "<sql>insert into notes (body) values ('a'), ('b');</sql><sql>select nope from notes</sql><sql>drop table notes</sql>",
        });
        res.EnsureSuccessStatusCode();
        var body = await res.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(2, body.GetProperty("stoppedAt").GetInt32());
        var blocks = body.GetProperty("blocks");
        Assert.Equal(3, blocks.GetArrayLength());
        Assert.Equal(2, blocks[1].GetProperty("results")[0].GetProperty("rowCount").GetInt32());
        Assert.Equal("42703", blocks[2].GetProperty("results")[0].GetProperty("error").GetString("code"));
        var check = await TestApp.SqlAsync(c, id, "select count(*) from notes"); // the 4th block never ran
        Assert.Equal(2, check[0].GetProperty("rows")[0][0].GetInt32());
    }
}

internal static class JsonExtensions
{
    public static string? GetString(this JsonElement e, string property) => e.GetProperty(property).GetString();
}
