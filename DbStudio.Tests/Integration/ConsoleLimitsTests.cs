// Bounded console results (issue 12): a cap per value and a byte budget per run, applied while the values are read, so
// that no statement makes the app hold more than the budget; COPY to or from the client is an error entry, not a 500.
using System.Diagnostics;
using System.Text.Json;
using DbStudio.Core;
using DbStudio.Core.Console;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DbStudio.Tests.Integration;

// They move some 50 MB through PostgreSQL: run with the other heavy ones, after the parallel tests (some of which,
// the streams', need the machine's attention to keep up).
[Collection(nameof(AloneCollection))]
public class ConsoleLimitsTests(TestApp app)
{
    private async Task<(HttpClient Client, string Id)> ProjectAsync()
    {
        var client = await app.NewUserClientAsync();
        return (client, (await TestApp.CreateProjectAsync(client)).Id);
    }

    [Fact]
    public async Task A_long_value_is_cut_at_the_cap_with_its_true_length_and_a_flag()
    {
        var (c, id) = await ProjectAsync();
        var r = await TestApp.SqlAsync(c, id, "select repeat('x', 3000000) as big, 42 as small, '{\"a\":1}'::jsonb as doc");
        var result = r[0];
        Assert.True(result.GetProperty("truncated").GetBoolean());
        Assert.True(result.GetProperty("rowCountExact").GetBoolean());
        Assert.Equal(1, result.GetProperty("rowCount").GetInt64());
        var row = result.GetProperty("rows")[0];
        Assert.Equal(1024 * 1024, row[0].GetString()!.Length);
        Assert.Equal(42, row[1].GetInt32());
        Assert.Equal(JsonValueKind.Object, row[2].ValueKind); // whole values keep their JSON kind
        var cut = Assert.Single(result.GetProperty("truncatedValues").EnumerateArray());
        Assert.Equal(0, cut.GetProperty("row").GetInt32());
        Assert.Equal(0, cut.GetProperty("column").GetInt32());
        Assert.Equal(3_000_000, cut.GetProperty("bytes").GetInt64());
        Assert.Contains("cut", result.GetProperty("notice").GetString());

        // Results with nothing left out carry no notice and no list.
        var plain = (await TestApp.SqlAsync(c, id, "select 1"))[0];
        Assert.False(plain.GetProperty("truncated").GetBoolean());
        Assert.False(plain.TryGetProperty("truncatedValues", out _));
        Assert.False(plain.TryGetProperty("notice", out _));
    }

    [Fact]
    public async Task A_cut_never_splits_a_character_and_a_cut_json_value_is_text()
    {
        var (c, id) = await ProjectAsync();
        // 'x' + 600,000 two-byte characters: the 1 MiB cap falls inside a character, which is left out whole.
        var r = await TestApp.SqlAsync(c, id, "select 'x' || repeat('é', 600000), ('[' || repeat('1,', 700000) || '1]')::jsonb");
        var row = r[0].GetProperty("rows")[0];
        var text = row[0].GetString()!;
        Assert.Equal(1 + 524_287, text.Length);
        Assert.True(text.Skip(1).All(ch => ch == 'é'));
        Assert.Equal(JsonValueKind.String, row[1].ValueKind); // a prefix of JSON is not JSON
        Assert.Equal(2, r[0].GetProperty("truncatedValues").GetArrayLength());
    }

    [Fact]
    public async Task Copy_to_stdout_and_from_stdin_are_error_entries_in_the_console_and_the_assistant()
    {
        var (c, id) = await ProjectAsync();
        foreach (var sql in new[] { "copy (select 1) to stdout", "create table t (a int); copy t from stdin" })
        {
            var res = await c.PostAsJsonAsync($"/api/projects/{id}/sql", new { sql });
            Assert.Equal(System.Net.HttpStatusCode.OK, res.StatusCode);
            var results = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("results");
            var error = results[results.GetArrayLength() - 1].GetProperty("error");
            Assert.Equal("0A000", error.GetProperty("code").GetString());
            Assert.Contains("COPY", error.GetProperty("message").GetString());
            Assert.Contains("export", error.GetProperty("hint").GetString());
        }
        var assistant = await c.PostAsJsonAsync($"/api/projects/{id}/assistant/sql",
            new { text = "<sql>select 1</sql> then <sql>COPY (select 2) TO STDOUT WITH (FORMAT csv)</sql><sql>select 3</sql>" });
        Assert.Equal(System.Net.HttpStatusCode.OK, assistant.StatusCode);
        var body = await assistant.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, body.GetProperty("stoppedAt").GetInt32());
        Assert.Equal("0A000", body.GetProperty("blocks")[1].GetProperty("results")[0].GetProperty("error").GetProperty("code").GetString());
        // The console works on afterwards (the broken connection is not reused).
        Assert.Equal(7, (await TestApp.SqlAsync(c, id, "select 7"))[0].GetProperty("rows")[0][0].GetInt32());
    }

    /// <summary>A console of the app's own services with a budget of its own and a deadline long enough for a slow machine.</summary>
    private SqlConsole ConsoleWith(long resultBytes, int valueBytes = 1024 * 1024)
    {
        var options = app.Service<IOptions<DbStudioOptions>>().Value;
        var custom = new DbStudioOptions
        {
            OwnerConnectionLimit = options.OwnerConnectionLimit,
            Console = new ConsoleOptions
            {
                MaxValueBytes = valueBytes, MaxResultBytes = resultBytes, MaxRunBytes = 4 * resultBytes, MaxRows = 1000,
                StatementTimeout = TimeSpan.FromMinutes(2), PoolSize = options.Console.PoolSize,
            },
        };
        return ActivatorUtilities.CreateInstance<SqlConsole>(app.Services, Options.Create(custom));
    }

    [Fact]
    public async Task A_query_past_the_budget_is_stopped_there_but_a_write_returning_rows_runs_to_the_end()
    {
        var (_, id) = await ProjectAsync();
        var console = ConsoleWith(resultBytes: 4 * 1024 * 1024);
        var sw = Stopwatch.StartNew();
        var r = await console.RunAsync(id, "select g, repeat('x', 5000000) from generate_series(1, 1000) g");
        sw.Stop();
        var q = r[0];
        Assert.True(q.Error is null, $"{q.Error}");
        Assert.Equal("SELECT", q.Command);
        Assert.True(q.Truncated);
        Assert.False(q.RowCountExact); // stopped: 1,000 × 5 MB were never sent
        Assert.InRange(q.Rows!.Count, 3, 5);
        Assert.Equal(q.Rows.Count, q.RowCount);
        Assert.All(q.TruncatedValues!, v => Assert.Equal(5_000_000, v.Bytes));
        Assert.Contains("stopped", q.Notice);

        // INSERT … RETURNING past the budget: nothing is canceled (that would undo the insert); rows are counted.
        var w = await console.RunAsync(id,
            "create table big (v text); insert into big select repeat('y', 2000000) from generate_series(1, 6) returning v; select count(*) from big");
        Assert.All(w, x => Assert.Null(x.Error));
        Assert.True(w[1].RowCountExact);
        Assert.Equal(6, w[1].RowCount);
        Assert.True(w[1].Rows!.Count < 6);
        Assert.Equal("6", w[2].Rows![0][0]);

        // Inside an explicit transaction a query is not stopped either (a cancel would abort the transaction).
        var t = await console.RunAsync(id, "begin; select repeat('z', 2000000) from generate_series(1, 8); commit");
        Assert.All(t, x => Assert.Null(x.Error));
        Assert.True(t[1].RowCountExact);
        Assert.Equal(8, t[1].RowCount);
    }
}

/// <summary>Runs alone (no other test allocates meanwhile), so the process's allocation counter measures the console.</summary>
[CollectionDefinition(nameof(AloneCollection), DisableParallelization = true)]
public sealed class AloneCollection;

[Collection(nameof(AloneCollection))]
public class ConsoleMemoryTests(TestApp app, ITestOutputHelper output)
{
    [Theory]
    [InlineData("select repeat('x', 200000000)")]
    [InlineData("select repeat('x', 5000000) from generate_series(1, 1000)")]
    public async Task Huge_results_allocate_within_the_configured_budget(string sql)
    {
        var client = await app.NewUserClientAsync();
        var id = (await TestApp.CreateProjectAsync(client)).Id;
        const long budget = 8 * 1024 * 1024;
        var options = app.Service<IOptions<DbStudioOptions>>().Value;
        var console = ActivatorUtilities.CreateInstance<SqlConsole>(app.Services, Options.Create(new DbStudioOptions
        {
            OwnerConnectionLimit = options.OwnerConnectionLimit,
            Console = new ConsoleOptions
            {
                MaxResultBytes = budget, MaxRunBytes = budget, MaxValueBytes = 1024 * 1024, StatementTimeout = TimeSpan.FromMinutes(2),
            },
        }));
        await console.RunAsync(id, "select 1"); // warm up: the pool's connection, JIT

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var peakBefore = System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64;
        var sw = Stopwatch.StartNew();
        var results = await console.RunAsync(id, sql);
        var read = GC.GetTotalAllocatedBytes(precise: true) - before;
        // What the API does with it: serialize the results (to nowhere).
        await JsonSerializer.SerializeAsync(Stream.Null, new { results });
        sw.Stop();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        output.WriteLine($"reading: {read / 1048576.0:0.0} MiB");
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        output.WriteLine($"{sql}: {allocated / 1048576.0:0.0} MiB allocated for a budget of {budget / 1048576} MiB " +
                         $"(peak working set {peakBefore / 1048576} → {self.PeakWorkingSet64 / 1048576} MiB), {sw.ElapsedMilliseconds} ms; " +
                         $"rows kept {results[0].Rows?.Count}, rowCount {results[0].RowCount}, exact {results[0].RowCountExact}");

        var r = Assert.Single(results);
        Assert.True(r.Error is null, $"{r.Error}");
        Assert.True(r.Truncated);
        Assert.NotEmpty(r.TruncatedValues!);
        // Values are kept as .NET strings (two bytes a character): reading allocates about twice the budget, whatever
        // the statement sends; writing the JSON adds short-lived buffers of its writer (about 3 bytes a kept character).
        // Reading a 200 MB value whole would have allocated 200 MB at least (400 MB as a string).
        Assert.True(read < 2 * budget + 8 * 1024 * 1024, $"reading allocated {read:N0} bytes");
        Assert.True(allocated < 6 * budget + 16 * 1024 * 1024, $"allocated {allocated:N0} bytes");
    }
}
