// The Data tab's edits on a real PostgreSQL: by primary key, through the REST planner, never overwriting
// someone else's change, PostgreSQL's message for bad input with nothing changed.
using System.Text.Json;
using DbStudio.Core.Panel;
using DbStudio.Core.Rest;
using DbStudio.Tests.Infrastructure;
using DbStudio.Core.Catalog;

namespace DbStudio.Tests.Integration;

public class TableEditingTests(TestApp app)
{
    private async Task<(HttpClient C, string Id, TableInfo Table, TableBrowser B)> SetUpAsync()
    {
        var c = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(c);
        await TestApp.SqlAsync(c, p.Id, "create table t (id serial primary key, name text, n int, ok boolean, meta jsonb, at timestamptz, price numeric(8,2)); " +
            "insert into t (name, n, ok, meta, at, price) values ('a', 1, false, '{\"x\": 1}', '2024-01-02 03:04:05+00', 1.50)");
        var table = (await app.Service<SchemaCache>().FindTableAsync(p.Id, "t"))!;
        return (c, p.Id, table, app.Service<TableBrowser>());
    }

    private static async Task<JsonElement> FirstRow(TableBrowser b, string id) => (await b.PageAsync(id, "t", 0))!.Rows[0];

    [Fact]
    public async Task Each_type_of_cell_is_saved_and_reads_back()
    {
        var (c, id, t, b) = await SetUpAsync();
        foreach (var (col, value, expected) in new[]
                 {
                     ("name", "changed", "changed"), ("n", "42", "42"), ("ok", "true", "true"), ("meta", "{\"y\": [1, 2]}", "{\"y\": [1, 2]}"),
                     ("at", "2025-06-07T08:09:10Z", "2025-06-07 08:09:10+00"), ("price", "9.99", "9.99"),
                 })
        {
            var row = await FirstRow(b, id);
            var r = await b.UpdateCellAsync(id, t, row, col, row.GetProperty(col), value);
            Assert.True(r.Error is null, $"{col}: {r.Error}");
            var check = await TestApp.SqlAsync(c, id, $"select {col}::text from t where id = 1");
            Assert.Equal(expected, check[0].GetProperty("rows")[0][0].GetString());
        }
        var nulled = await b.UpdateCellAsync(id, t, await FirstRow(b, id), "name", (await FirstRow(b, id)).GetProperty("name"), null);
        Assert.Equal(JsonValueKind.Null, nulled.Row!.Value.GetProperty("name").ValueKind); // NULL, not ''
    }

    [Fact]
    public async Task Bad_input_returns_postgres_message_and_changes_nothing()
    {
        var (c, id, t, b) = await SetUpAsync();
        var row = await FirstRow(b, id);
        var r = await b.UpdateCellAsync(id, t, row, "n", row.GetProperty("n"), "not a number");
        Assert.Equal("22P02", r.Error!.Code);
        Assert.Contains("integer", r.Error.Message);
        Assert.Equal("1", (await TestApp.SqlAsync(c, id, "select n::text from t"))[0].GetProperty("rows")[0][0].GetString());
        var bad = await b.UpdateCellAsync(id, t, row, "meta", row.GetProperty("meta"), "{bad json");
        Assert.StartsWith("Not valid JSON", bad.Invalid); // checked before anything was sent
        Assert.Null(bad.Row);
        Assert.Null(bad.Error);
    }

    [Fact]
    public async Task An_edit_never_overwrites_someone_elses_change_and_shows_it()
    {
        var (c, id, t, b) = await SetUpAsync();
        var shown = await FirstRow(b, id);
        await TestApp.SqlAsync(c, id, "update t set name = 'theirs' where id = 1"); // someone else, meanwhile
        var r = await b.UpdateCellAsync(id, t, shown, "name", shown.GetProperty("name"), "mine");
        Assert.True(r.Conflict);
        Assert.Equal("theirs", r.Current!.Value.GetProperty("name").GetString());
        Assert.Equal("theirs", (await TestApp.SqlAsync(c, id, "select name from t"))[0].GetProperty("rows")[0][0].GetString());
        // Another column of the same row is still editable: only the cell's own value is compared.
        Assert.Null((await b.UpdateCellAsync(id, t, shown, "n", shown.GetProperty("n"), "7")).Error);
    }

    [Fact]
    public async Task Inserts_leave_defaults_to_postgres_and_deletes_take_several_rows()
    {
        var (c, id, t, b) = await SetUpAsync();
        var inserted = await b.InsertAsync(id, t, new Dictionary<string, string?> { ["name"] = "b", ["n"] = "2" });
        Assert.Null(inserted.Error);
        Assert.Equal(2, inserted.Row!.Value.GetProperty("id").GetInt32()); // SERIAL from PostgreSQL
        var bad = await b.InsertAsync(id, t, new Dictionary<string, string?> { ["n"] = "x" });
        Assert.Equal("22P02", bad.Error!.Code);
        var page = await b.PageAsync(id, "t", 0);
        var (deleted, error) = await b.DeleteAsync(id, t, page!.Rows);
        Assert.Null(error);
        Assert.Equal(2, deleted);
        Assert.Equal("0", (await TestApp.SqlAsync(c, id, "select count(*)::text from t"))[0].GetProperty("rows")[0][0].GetString());
    }

    [Fact]
    public async Task A_page_says_how_many_rows_there_are_and_whether_that_is_the_planners_estimate()
    {
        var (c, id, _, b) = await SetUpAsync();
        var small = await b.PageAsync(id, "t", 0);
        Assert.Equal(1, small!.Total);
        Assert.False(small.TotalIsEstimate);
        var results = await TestApp.SqlAsync(c, id,
            "create table big (id int primary key); insert into big select generate_series(1, 100000); analyze big");
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        var big = await b.PageAsync(id, "big", 1);
        Assert.True(big!.TotalIsEstimate);
        Assert.InRange(big.Total!.Value, 90_000, 110_000);
        Assert.Equal(51, big.Rows[0].GetProperty("id").GetInt32());
        // With a filter the total is counted (the estimate is the whole table's).
        var filtered = await b.PageAsync(id, "big", 0, filter: new DataFilter([new TableBrowser.SimpleFilter("id", "lte", "70")], Any: false));
        Assert.Equal(70, filtered!.Total);
        Assert.False(filtered.TotalIsEstimate);
    }
}
