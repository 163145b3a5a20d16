// Data tab: server-side time to produce a 50-row page of a 1,000,000-row table (goal: under 100 ms), first,
// middle and last pages, next to the bare query in the same run (SELECT … ORDER BY id LIMIT 50 OFFSET n); and (keyset) the
// next and previous pages at depth 999,950 by primary key next to the first page.
using System.Diagnostics;
using DbStudio.Core.Console;
using DbStudio.Core.Panel;
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Bench;

public static class DataPageBench
{
    /// <summary>A project with table <c>big</c> of <paramref name="rows"/> rows (bigserial key 1…rows).</summary>
    private static async Task<ProjectInfo> BigTableAsync(BenchHost host, int rows)
    {
        var userId = await host.CreateUserAsync();
        var project = await host.CreateProjectAsync(userId, "http://localhost");
        var setup = await host.App.Services.GetRequiredService<SqlConsole>().RunAsync(project.Id,
            "create table big (id bigserial primary key, name text, price numeric(10,2), at timestamptz default now(), meta jsonb); " +
            $"insert into big (name, price, meta) select 'row ' || g, g % 1000 * 1.25, jsonb_build_object('g', g) from generate_series(1, {rows}) g; " +
            "analyze big");
        if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
        return project;
    }

    /// <summary>The bare queries' connection: the project owner's login (the platform's own login may not read project
    /// schemas), from the project's Connection URL.</summary>
    private static NpgsqlDataSource OwnerDataSource(ProjectInfo project)
    {
        var url = new Uri(project.ConnectionUrl);
        var user = url.UserInfo.Split(':', 2);
        return NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder
        {
            Host = url.Host, Port = url.Port, Database = url.AbsolutePath.TrimStart('/'),
            Username = Uri.UnescapeDataString(user[0]), Password = Uri.UnescapeDataString(user[1]),
        }.ConnectionString);
    }

    private static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    /// <summary>
    /// The Data tab's next page by keyset at depth rows − 50 (999,950 of 1,000,000: the last page) next to its first page,
    /// both server side through TableBrowser, and the bare keyset query in the same run (goal: equal within noise, &lt; 10 ms).
    /// </summary>
    public static async Task KeysetAsync(int repeats, int rows)
    {
        await using var host = await BenchHost.StartAsync();
        var project = await BigTableAsync(host, rows);
        var browser = host.App.Services.GetRequiredService<TableBrowser>();
        await using var raw = OwnerDataSource(project);
        var depth = rows - TableBrowser.PageSize;
        var boundary = System.Text.Json.JsonSerializer.SerializeToElement(new { id = depth });

        Console.WriteLine($"\n== Data tab keyset paging on a {rows:N0}-row table (server side, {repeats} runs each, median) ==");
        Console.WriteLine($"  {"page",-42} {"DbStudio ms",12} {"bare query ms",14}");
        var cases = new (string Name, Func<Task<int>> Ours, string Bare)[]
        {
            ("first page", async () => (await browser.PageAsync(project.Id, "big", 0))!.Rows.Count,
                $"SELECT * FROM proj_{project.Id}.big ORDER BY id LIMIT 50"),
            ($"next page after row {depth:N0} (keyset)", async () => (await browser.PageAfterAsync(project.Id, "big", boundary, backwards: false))!.Rows.Count,
                $"SELECT * FROM proj_{project.Id}.big WHERE id > {depth} ORDER BY id LIMIT 50"),
            ($"previous page before row {depth:N0} (keyset)", async () => (await browser.PageAfterAsync(project.Id, "big", boundary, backwards: true))!.Rows.Count,
                $"SELECT * FROM proj_{project.Id}.big WHERE id < {depth} ORDER BY id DESC LIMIT 50"),
        };
        var medians = new List<double>();
        foreach (var (name, ours, bare) in cases)
        {
            await ours(); // warm
            var ourTimes = new List<double>();
            var bareTimes = new List<double>();
            for (var i = 0; i < repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                var n = await ours();
                ourTimes.Add(sw.Elapsed.TotalMilliseconds);
                if (n != TableBrowser.PageSize) throw new InvalidOperationException($"{name}: {n} rows");
                sw.Restart();
                await using (var cmd = raw.CreateCommand(bare))
                await using (var r = await cmd.ExecuteReaderAsync())
                    while (await r.ReadAsync()) { }
                bareTimes.Add(sw.Elapsed.TotalMilliseconds);
            }
            medians.Add(Median(ourTimes));
            Console.WriteLine($"  {name,-42} {Median(ourTimes),12:F2} {Median(bareTimes),14:F2}");
        }
        Console.WriteLine($"  keyset at depth / first page: {medians[1] / medians[0]:F2}   goal: ≈ 1 (within noise) and under 10 ms   (load average {ServerStats.Load()})");
    }

    public static async Task RunAsync(int repeats)
    {
        await using var host = await BenchHost.StartAsync();
        var services = host.App.Services;
        var project = await BigTableAsync(host, 1_000_000);
        var browser = services.GetRequiredService<TableBrowser>();
        await using var raw = OwnerDataSource(project);

        Console.WriteLine($"\n== Data tab page of a 1,000,000-row table (server side, {repeats} runs each, median) ==");
        Console.WriteLine($"  {"page",-14} {"DbStudio ms",12} {"bare query ms",14} {"ratio",7}");
        foreach (var page in new[] { 0, 1, 100, 10_000, 19_999 })
        {
            await browser.PageAsync(project.Id, "big", page); // warm
            var ours = new List<double>();
            var bare = new List<double>();
            for (var i = 0; i < repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                var p = await browser.PageAsync(project.Id, "big", page);
                ours.Add(sw.Elapsed.TotalMilliseconds);
                if (p!.Rows.Count != 50) throw new InvalidOperationException($"page {page}: {p.Rows.Count} rows");
                sw.Restart();
                await using (var cmd = raw.CreateCommand($"SELECT * FROM proj_{project.Id}.big ORDER BY id LIMIT 50 OFFSET {page * 50}"))
                await using (var r = await cmd.ExecuteReaderAsync())
                    while (await r.ReadAsync()) { }
                bare.Add(sw.Elapsed.TotalMilliseconds);
            }
            Console.WriteLine($"  {page + 1,-14:N0} {Median(ours),12:F1} {Median(bare),14:F1} {Median(ours) / Median(bare),7:F2}");
        }
        Console.WriteLine("  goal: first render of a page under 100 ms; the total shown is the planner's estimate (no count(*) per page)");
    }
}
