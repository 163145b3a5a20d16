// Soak (issue 6 §2): 64 wrk connections of mixed REST traffic across 50 projects — 70% anon reads by key, 20% inserts
// and 10% updates with the DB_API_KEY — for a few minutes, measured in consecutive segments so that a trend shows:
// throughput, p50/p99 and errors per segment, and the app's memory (managed heap after a full GC, and RSS) after each.
// The first segment is the baseline the later ones are compared with.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using DbStudio.Core.Access;
using DbStudio.Core.Console;

namespace DbStudio.Bench;

public static partial class SoakBench
{
    public static async Task RunAsync(int seconds, int projectCount, int connections)
    {
        if (RestBench.Which("wrk") is null) { Console.Error.WriteLine("wrk is needed: apt-get install wrk"); Environment.Exit(2); }
        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"]);
        await host.App.StartAsync();
        var baseUrl = host.App.Urls.First();
        var services = host.App.Services;
        var userId = await host.CreateUserAsync();
        var lua = new StringBuilder("projects = {\n");
        for (var i = 0; i < projectCount; i++)
        {
            var p = await host.CreateProjectAsync(userId, baseUrl);
            var setup = await services.GetRequiredService<SqlConsole>().RunAsync(p.Id,
                "create table items (id serial primary key, n int not null, note text); " +
                "insert into items (n, note) select g, 'seed ' || g from generate_series(1, 1000) g");
            if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
            await services.GetRequiredService<AccessPolicies>().PutAsync(p.Id, "items", AccessSettings.Defaults(null) with { anon_select = true });
            lua.Append($"  {{ id = \"{p.Id}\", anon = \"{p.AnonKey}\", api = \"{p.ApiKey}\" }},\n");
        }
        lua.Append("""
            }
            math.randomseed(os.time())
            request = function()
              local p = projects[math.random(1, #projects)]
              local r = math.random(1, 100)
              local path = "/db/" .. p.id .. "/rest/items"
              if r <= 70 then
                return wrk.format("GET", path .. "?id=eq." .. math.random(1, 1000), { ["apikey"] = p.anon })
              elseif r <= 90 then
                return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. p.api, ["Content-Type"] = "application/json",
                  ["Prefer"] = "return=minimal" }, '{"n":' .. math.random(1, 1000000) .. ',"note":"soak"}')
              else
                return wrk.format("PATCH", path .. "?id=eq." .. math.random(1, 1000), { ["Authorization"] = "Bearer " .. p.api,
                  ["Content-Type"] = "application/json", ["Prefer"] = "return=minimal" }, '{"note":"updated"}')
              end
            end
            """);
        var script = Path.Combine(Path.GetTempPath(), $"dbstudio-soak-{Guid.NewGuid():N}.lua");
        await File.WriteAllTextAsync(script, lua.ToString());

        (double HeapMb, double RssMb) Memory()
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            using var self = Process.GetCurrentProcess();
            return (GC.GetTotalMemory(false) / 1048576.0, self.WorkingSet64 / 1048576.0);
        }

        await RestBench.Run("wrk", ["-t2", $"-c{connections}", "-d5s", "-s", script, baseUrl]); // warm-up
        var start = Memory();
        Console.WriteLine($"\n== Soak: {connections} connections, {projectCount} projects, mixed REST (70% anon GET by key, 20% insert, " +
                          $"10% update), {seconds} s in 30 s segments, loopback, {Environment.ProcessorCount} cores ==");
        Console.WriteLine($"  start: managed heap {start.HeapMb:F1} MB, RSS {start.RssMb:F0} MB");
        Console.WriteLine("  segment   req/s    p50 ms   p99 ms   errors   heap MB   RSS MB");
        var rows = new List<(double Rps, double P50, double P99, long Errors, double Heap, double Rss)>();
        var segments = Math.Max(1, seconds / 30);
        for (var s = 0; s < segments; s++)
        {
            var output = await RestBench.Run("wrk", ["-t2", $"-c{connections}", "-d30s", "--latency", "-s", script, baseUrl]);
            var rps = double.Parse(Rps().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
            var errors = (NonSuccess().Match(output) is { Success: true } m ? long.Parse(m.Groups[1].Value) : 0)
                         + (SocketErrors().Match(output) is { Success: true } e ? e.Groups.Values.Skip(1).Sum(g => long.Parse(g.Value)) : 0);
            var mem = Memory();
            rows.Add((rps, RestBench.Latency(output, "50%"), RestBench.Latency(output, "99%"), errors, mem.HeapMb, mem.RssMb));
            var r = rows[^1];
            Console.WriteLine($"  {s + 1,7}  {r.Rps,7:F0}  {r.P50,7:F2}  {r.P99,7:F2}  {r.Errors,7}  {r.Heap,8:F1}  {r.Rss,7:F0}");
        }
        File.Delete(script);
        var first = rows[0];
        var last = rows[^1];
        // Least-squares slope of the heap over the segments, per minute.
        var xs = Enumerable.Range(0, rows.Count).Select(i => i * 0.5).ToList();
        var slope = rows.Count < 2 ? 0 : Slope(xs, rows.Select(r => r.Heap).ToList());
        Console.WriteLine($"  errors in total {rows.Sum(r => r.Errors)} (goal 0); throughput last/first segment {last.Rps / first.Rps:P0}; " +
                          $"heap {start.HeapMb:F1} → {last.Heap:F1} MB (trend {slope:+0.00;-0.00} MB/min), RSS {start.RssMb:F0} → {last.Rss:F0} MB");
    }

    private static double Slope(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        var mx = x.Average();
        var my = y.Average();
        return x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my)) / x.Sum(v => (v - mx) * (v - mx));
    }

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")] private static partial Regex Rps();
    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")] private static partial Regex NonSuccess();
    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")] private static partial Regex SocketErrors();
}
