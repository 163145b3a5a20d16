// Data tab: server-side time to produce a 50-row page of a 1,000,000-row table (goal: under 100 ms), first,
// middle and last pages, next to the bare query in the same run (SELECT … ORDER BY id LIMIT 50 OFFSET n).
using System.Diagnostics;
using DbStudio.Core.Console;
using DbStudio.Core.Panel;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Identity;
using Npgsql;

namespace DbStudio.Bench;

public static class DataPageBench
{
    public static async Task RunAsync(int repeats)
    {
        await using var host = await BenchHost.StartAsync();
        var services = host.App.Services;
        var userId = await host.CreateUserAsync();
        var project = await host.CreateProjectAsync(userId, "http://localhost");
        var setup = await services.GetRequiredService<SqlConsole>().RunAsync(project.Id,
            "create table big (id bigserial primary key, name text, price numeric(10,2), at timestamptz default now(), meta jsonb); " +
            "insert into big (name, price, meta) select 'row ' || g, g % 1000 * 1.25, jsonb_build_object('g', g) from generate_series(1, 1000000) g; " +
            "analyze big");
        if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
        var browser = services.GetRequiredService<TableBrowser>();
        await using var raw = NpgsqlDataSource.Create(host.PlatformConnectionString);

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
            double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
            Console.WriteLine($"  {page + 1,-14:N0} {Median(ours),12:F1} {Median(bare),14:F1} {Median(ours) / Median(bare),7:F2}");
        }
        Console.WriteLine("  goal: first render of a page under 100 ms; the total shown is the planner's estimate (no count(*) per page)");
    }
}
