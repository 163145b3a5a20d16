// REST throughput and latency (issue 3): GET by primary key and 50-row pages with the ANON key on a
// policy-checked 100,000-row table, and (issue 15) a one-to-many embed — 50 parents with up to 10 children each,
// `select=id,name,children(id,name,qty)` — next to, in the same run, on the same machine, a hand-written minimal
// ASP.NET endpoint doing the same query (the embed: the same LEFT JOIN LATERAL … json_agg query; without and with a
// per-request role switch) and pgbench running the same SQL. Load: wrk, 16 connections on loopback. Prints req/s,
// p50/p99 and the ratios.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using DbStudio.Core.Platform;
using DbStudio.Core.Postgres;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Identity;
using Npgsql;

namespace DbStudio.Bench;

public static partial class RestBench
{
    private sealed record Result(string Name, double Rps, double P50, double P99);

    public static async Task RunAsync(int seconds, bool serveOnly = false)
    {
        if (Which("wrk") is null) { Console.Error.WriteLine("wrk is needed: apt-get install wrk"); Environment.Exit(2); }
        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"]);
        await host.App.StartAsync();
        var baseUrl = host.App.Urls.First();
        var services = host.App.Services;

        // A project with a 100,000-row table that anon may read (RLS on, policy USING (true)).
        var userId = await host.CreateUserAsync();
        var project = await host.CreateProjectAsync(userId, baseUrl);
        var setup = await services.GetRequiredService<SqlConsole>().RunAsync(project.Id,
            "create table items (id int primary key, name text not null, price numeric(10,2), user_id uuid); " +
            "insert into items select g, 'item ' || g, g * 1.25, gen_random_uuid() from generate_series(1, 100000) g; analyze items; " +
            // 50 parents with 0–10 children each (the embed case)
            "create table parents (id int primary key, name text not null); " +
            "create table children (id int primary key, parent_id int not null references parents(id), name text not null, qty int); " +
            "create index on children (parent_id); " +
            "insert into parents select g, 'parent ' || g from generate_series(1, 50) g; " +
            "insert into children select row_number() over (), p, 'child ' || p || '.' || c, c from generate_series(1, 50) p, " +
            "generate_series(1, 10) c where c <= (p * 7) % 11; analyze parents; analyze children");
        if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
        foreach (var table in new[] { "items", "parents", "children" })
            await services.GetRequiredService<AccessPolicies>().PutAsync(project.Id, table,
                AccessSettings.Defaults(table == "items" ? "user_id" : null) with { anon_select = true });

        // The baselines connect as the cluster's superuser: the platform's own login cannot read project schemas (DESIGN §2),
        // and the superuser can switch to the project's anon role for the RLS variant.
        var baselineConnection = BaselineConnectionString(host);
        await using var handWritten = await HandWrittenApp.StartAsync(baselineConnection, project.Id);
        var restBase = $"{baseUrl}/db/{project.Id}/rest";
        if (serveOnly)
        {
            Console.WriteLine($"REST {restBase} apikey {project.AnonKey}\nHAND {handWritten.Url}\nPG {host.PlatformConnectionString}");
            await host.App.WaitForShutdownAsync(); // Ctrl+C or SIGTERM ends it
            return;
        }
        // Variants run interleaved over three rounds and the median round counts, so warm-up, JIT tiering and the
        // machine's other work do not favour whichever ran last.
        const int rounds = 3;
        var rows = new List<(string Query, List<Result> Results)>();
        foreach (var (query, restPath, handPath, sql) in new[]
                 {
                     ("GET by primary key", "/items?id=eq.{r}", "/items/{r}", "SELECT id, name, price, user_id FROM items WHERE id = :r;"),
                     ("GET 50-row page", "/items?limit=50&offset={o}", "/items?offset={o}", "SELECT id, name, price, user_id FROM items LIMIT 50 OFFSET :o;"),
                     ("GET one-to-many embed (50 parents, <= 10 children each)", "/parents?select=id,name,children(id,name,qty)&order=id",
                         "/parents", HandWrittenApp.EmbedSql.Replace("$1", "50") + ";"),
                 })
        {
            var samples = new List<Result>[4];
            for (var i = 0; i < samples.Length; i++) samples[i] = [];
            for (var round = 0; round < rounds; round++)
            {
                samples[0].Add(await Wrk("hand-written endpoint, no role switch", handWritten.Url + handPath, null, seconds));
                samples[1].Add(await Wrk("hand-written endpoint + role switch (RLS)", handWritten.Url + "/rls" + handPath, null, seconds));
                samples[2].Add(await Wrk("DbStudio REST, ANON key (RLS)", restBase + restPath, project.AnonKey, seconds));
                samples[3].Add(await PgBench(host, project.Id, sql, seconds));
            }
            rows.Add((query, samples.Select(s => s.OrderBy(r => r.Rps).ElementAt(rounds / 2)).ToList()));
        }

        Console.WriteLine($"\n== REST throughput: 16 connections, {seconds} s per run, median of {rounds} interleaved rounds, loopback, {Environment.ProcessorCount} cores ==");
        foreach (var (query, results) in rows)
        {
            Console.WriteLine($"\n{query}");
            Console.WriteLine($"  {"variant",-46} {"req/s",10} {"p50 ms",8} {"p99 ms",8}");
            foreach (var r in results) Console.WriteLine($"  {r.Name,-46} {r.Rps,10:F0} {r.P50,8:F2} {r.P99,8:F2}");
            var hand = results[0];
            var rls = results[1];
            var ours = results[2];
            Console.WriteLine($"  ratio DbStudio / hand-written:               {ours.Rps / hand.Rps:P0} (goal ≥ 80%)");
            Console.WriteLine($"  ratio DbStudio / hand-written + role switch: {ours.Rps / rls.Rps:P0}");
            Console.WriteLine($"  DbStudio p99 {ours.P99:F2} ms (goal < 10 ms)");
        }
    }

    private static async Task<Result> Wrk(string name, string urlTemplate, string? apiKey, int seconds)
    {
        var script = Path.Combine(Path.GetTempPath(), $"dbstudio-wrk-{Guid.NewGuid():N}.lua");
        // {r}: random primary key; {o}: random page offset. Each request draws new values.
        var lua = "request = function()\n" +
                  "  local path = \"" + new Uri(urlTemplate.Replace("{r}", "RID").Replace("{o}", "OFS")).PathAndQuery + "\"\n" +
                  "  path = path:gsub(\"RID\", tostring(math.random(1, 100000))):gsub(\"OFS\", tostring(math.random(0, 950)))\n" +
                  (apiKey is null ? "  return wrk.format(\"GET\", path)\n" : $"  return wrk.format(\"GET\", path, {{[\"apikey\"] = \"{apiKey}\"}})\n") +
                  "end\n";
        await File.WriteAllTextAsync(script, lua);
        var origin = new Uri(urlTemplate.Replace("{r}", "1").Replace("{o}", "0")).GetLeftPart(UriPartial.Authority);
        // warm-up, then the measured run
        await Run("wrk", ["-t2", "-c16", "-d2s", "-s", script, origin]);
        var output = await Run("wrk", ["-t2", "-c16", $"-d{seconds}s", "--latency", "-s", script, origin]);
        File.Delete(script);
        var rps = double.Parse(RpsRegex().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var errors = NonSuccessRegex().Match(output);
        if (errors.Success) Console.Error.WriteLine($"{name}: {errors.Value.Trim()}");
        return new Result(name, rps, Latency(output, "50%"), Latency(output, "99%"));
    }

    internal static double Latency(string wrkOutput, string percentile)
    {
        var m = Regex.Match(wrkOutput, $@"^\s*{Regex.Escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        var v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch { "us" => v / 1000, "s" => v * 1000, _ => v };
    }

    /// <summary>The cluster's superuser on the platform's database.</summary>
    private static string BaselineConnectionString(BenchHost host) =>
        new NpgsqlConnectionStringBuilder(host.Cluster.SuperuserConnectionString())
            { Database = new NpgsqlConnectionStringBuilder(host.PlatformConnectionString).Database, Pooling = true }.ConnectionString;

    private static async Task<Result> PgBench(BenchHost host, string projectId, string sql, int seconds)
    {
        var csb = new NpgsqlConnectionStringBuilder(BaselineConnectionString(host));
        var script = Path.Combine(Path.GetTempPath(), $"dbstudio-pgbench-{Guid.NewGuid():N}.sql");
        await File.WriteAllTextAsync(script,
            $"\\set r random(1, 100000)\n\\set o random(0, 950)\nSET search_path = proj_{projectId};\n{sql}\n");
        var bin = PgBinaries.Find()!;
        var env = new Dictionary<string, string> { ["PGPASSWORD"] = csb.Password! };
        string[] args = ["-n", "-c", "16", "-j", "2", "-T", seconds.ToString(), "-M", "simple", "-r", "-f", script,
            "-h", csb.Host!, "-p", csb.Port.ToString(), "-U", csb.Username!, csb.Database!];
        var output = await Run(Path.Combine(bin, "pgbench"), args, env);
        File.Delete(script);
        var tps = double.Parse(TpsRegex().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var avg = double.Parse(PgLatencyRegex().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        return new Result("pgbench, same SQL (2 statements/transaction)", tps, avg, double.NaN);
    }

    internal static async Task<string> Run(string file, string[] args, Dictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        var all = await stdout + await stderr;
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} failed: {all}");
        return all;
    }

    internal static string? Which(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")] private static partial Regex RpsRegex();
    [GeneratedRegex(@"Non-2xx or 3xx responses: \d+")] private static partial Regex NonSuccessRegex();
    [GeneratedRegex(@"tps = ([\d.]+)")] private static partial Regex TpsRegex();
    [GeneratedRegex(@"latency average = ([\d.]+) ms")] private static partial Regex PgLatencyRegex();
}

/// <summary>The baseline: what a developer would write by hand — a minimal API, Npgsql, System.Text.Json.</summary>
public sealed class HandWrittenApp : IAsyncDisposable
{
    private sealed record Item(int id, string name, decimal? price, Guid? user_id);

    /// <summary>The embed, written by hand as PostgREST would plan it: one LEFT JOIN LATERAL json_agg per parent.</summary>
    public const string EmbedSql =
        "SELECT p.id, p.name, COALESCE(c.children, '[]') AS children FROM parents p LEFT JOIN LATERAL " +
        "(SELECT json_agg(x) AS children FROM (SELECT ch.id, ch.name, ch.qty FROM children ch WHERE ch.parent_id = p.id) x) c ON TRUE " +
        "ORDER BY p.id LIMIT $1";

    private readonly WebApplication _app;
    private readonly NpgsqlDataSource _db;
    public string Url { get; }

    private HandWrittenApp(WebApplication app, NpgsqlDataSource db, string url) { _app = app; _db = db; Url = url; }

    public static async Task<HandWrittenApp> StartAsync(string connectionString, string projectId)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var db = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(connectionString)
            { SearchPath = $"proj_{projectId}", MaxPoolSize = 64, NoResetOnClose = true }.ConnectionString).Build();
        var anon = $"proj_{projectId}_anon";

        async Task<List<Item>> Query(string sql, object arg, bool asAnon)
        {
            await using var conn = await db.OpenConnectionAsync();
            await using var batch = new NpgsqlBatch(conn);
            if (asAnon)
                batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT set_config('role', $1, true)") { Parameters = { new() { Value = anon } } });
            batch.BatchCommands.Add(new NpgsqlBatchCommand(sql) { Parameters = { new() { Value = arg } } });
            await using var r = await batch.ExecuteReaderAsync();
            if (asAnon) await r.NextResultAsync();
            var items = new List<Item>();
            while (await r.ReadAsync())
                items.Add(new Item(r.GetInt32(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetDecimal(2), r.IsDBNull(3) ? null : r.GetGuid(3)));
            return items;
        }
        const string byId = "SELECT id, name, price, user_id FROM items WHERE id = $1";
        const string page = "SELECT id, name, price, user_id FROM items LIMIT 50 OFFSET $1";
        // The embed: parents' plain columns from the reader, the children's JSON from PostgreSQL, written with Utf8JsonWriter.
        async Task Embed(HttpContext ctx, bool asAnon)
        {
            await using var conn = await db.OpenConnectionAsync();
            await using var batch = new NpgsqlBatch(conn);
            if (asAnon)
                batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT set_config('role', $1, true)") { Parameters = { new() { Value = anon } } });
            batch.BatchCommands.Add(new NpgsqlBatchCommand(EmbedSql) { Parameters = { new() { Value = 50L } } });
            await using var r = await batch.ExecuteReaderAsync();
            if (asAnon) await r.NextResultAsync();
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(16384);
            await using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                w.WriteStartArray();
                while (await r.ReadAsync())
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", r.GetInt32(0));
                    w.WriteString("name", r.GetString(1));
                    w.WritePropertyName("children");
                    w.WriteRawValue(r.GetString(2), skipInputValidation: true);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            ctx.Response.ContentType = "application/json; charset=utf-8";
            ctx.Response.ContentLength = buffer.WrittenCount;
            await ctx.Response.Body.WriteAsync(buffer.WrittenMemory);
        }
        app.MapGet("/parents", (HttpContext ctx) => Embed(ctx, false));
        app.MapGet("/rls/parents", (HttpContext ctx) => Embed(ctx, true));
        app.MapGet("/items/{id:int}", async (int id) => Results.Json(await Query(byId, id, false)));
        app.MapGet("/items", async (int offset) => Results.Json(await Query(page, (long)offset, false)));
        app.MapGet("/rls/items/{id:int}", async (int id) => Results.Json(await Query(byId, id, true)));
        app.MapGet("/rls/items", async (int offset) => Results.Json(await Query(page, (long)offset, true)));
        await app.StartAsync();
        return new HandWrittenApp(app, db, app.Urls.First());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await _db.DisposeAsync();
    }
}
