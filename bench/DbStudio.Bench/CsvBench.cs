// CSV import and export (issue 14): N rows in and out of one table through DbStudio's CsvTransfer (COPY on the owner's
// login) side by side with `psql \copy` on the same file and the same server in the same run. Prints MB/s, the ratio
// (goal ≥ 80 % both ways) and how far the app's memory rose while it ran (sampled; goal: flat in the row count — run
// with 100000 and 1000000 to see).
using System.Diagnostics;
using DbStudio.Core.Console;
using DbStudio.Core.Csv;
using DbStudio.Core.Postgres;

namespace DbStudio.Bench;

public static class CsvBench
{
    public static async Task RunAsync(int rows)
    {
        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"]);
        await host.App.StartAsync();
        var services = host.App.Services;
        var project = await host.CreateProjectAsync(await host.CreateUserAsync());
        var console = services.GetRequiredService<SqlConsole>();
        foreach (var sql in new[]
                 {
                     "create table items (id bigint primary key, name text not null, qty integer, price numeric, added timestamptz, note text)",
                     "create table items_psql (like items including all)",
                 })
            if ((await console.RunAsync(project.Id, sql)).FirstOrDefault(r => r.Error is not null) is { } failed)
                throw new InvalidOperationException(failed.Error!.Message);

        var dir = Path.Combine(Path.GetTempPath(), $"dbstudio-csv-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "items.csv");
        await using (var w = new StreamWriter(file))
        {
            await w.WriteLineAsync("id,name,qty,price,added,note");
            for (var i = 1; i <= rows; i++)
                await w.WriteLineAsync($"{i},Item number {i},{i % 1000},{i % 997}.{i % 100:D2},2026-11-{1 + i % 28:D2}T{i % 24:D2}:00:00Z," +
                                       (i % 5 == 0 ? "" : i % 7 == 0 ? "\"with, comma and \"\"quotes\"\"\"" : "plain note"));
        }
        var mb = new FileInfo(file).Length / 1024.0 / 1024.0;
        var url = project.ConnectionUrl;
        var psql = Path.Combine(PgBinaries.Find()!, "psql");
        var csv = services.GetRequiredService<CsvTransfer>();

        // Import: psql first (cold cache for both: a fresh table each), then DbStudio.
        var psqlIn = await TimeAsync(() => RunAsync(psql, url, $"\\copy items_psql (id,name,qty,price,added,note) from '{file}' with (format csv, header true)"));
        var (oursIn, memIn) = await SampledAsync(async () =>
        {
            var result = await csv.ImportAsync(project.Id, "items", () => File.OpenRead(file), dryRun: false, CancellationToken.None);
            if (result is null || result.Imported != rows) throw new InvalidOperationException($"imported {result?.Imported} of {rows}: {result?.Errors.FirstOrDefault()}");
        });

        // Export: psql \copy to a file, DbStudio's export to a file.
        var psqlOutFile = Path.Combine(dir, "psql-out.csv");
        var oursOutFile = Path.Combine(dir, "ours-out.csv");
        var psqlOut = await TimeAsync(() => RunAsync(psql, url, $"\\copy (select * from items order by id) to '{psqlOutFile}' with (format csv, header true)"));
        var (oursOut, memOut) = await SampledAsync(async () =>
        {
            await using var output = File.Create(oursOutFile);
            if (await csv.ExportAsync(project.Id, "items", output) is { } refused) throw new InvalidOperationException(refused.Error.Message);
        });
        if (new FileInfo(psqlOutFile).Length != new FileInfo(oursOutFile).Length)
            throw new InvalidOperationException("the two exports differ in length");

        // A filtered export (the Data tab's "Export filtered", the export API's query): half the rows, by the REST filter.
        var psqlFilteredFile = Path.Combine(dir, "psql-filtered.csv");
        var oursFilteredFile = Path.Combine(dir, "ours-filtered.csv");
        var psqlFiltered = await TimeAsync(() => RunAsync(psql, url, $"\\copy (select * from items where qty < 500 order by id) to '{psqlFilteredFile}' with (format csv, header true)"));
        var (oursFiltered, memFiltered) = await SampledAsync(async () =>
        {
            await using var output = File.Create(oursFilteredFile);
            var request = DbStudio.Core.Panel.TableExport.Request("items", [new("qty", "lt.500")]);
            if (await csv.ExportAsync(project.Id, "items", output, request) is { } refused) throw new InvalidOperationException(refused.Error.Message);
        });
        if (new FileInfo(psqlFilteredFile).Length != new FileInfo(oursFilteredFile).Length)
            throw new InvalidOperationException("the two filtered exports differ in length");
        var filteredMb = new FileInfo(oursFilteredFile).Length / 1024.0 / 1024.0;

        static string Mem(Memory m) => $"peak process memory {m.Peak / 1024.0 / 1024.0:F0} MB (+{m.Rise / 1024.0 / 1024.0:F1} MB while it ran)";
        Console.WriteLine($"\n== CSV: {rows:N0} rows, {mb:F1} MB, loopback, {Environment.ProcessorCount} cores, load average {ServerStats.Load()} ==");
        Console.WriteLine($"  import    psql \\copy {psqlIn.TotalSeconds,6:F2} s {mb / psqlIn.TotalSeconds,7:F1} MB/s | DbStudio {oursIn.TotalSeconds,6:F2} s " +
                          $"{mb / oursIn.TotalSeconds,7:F1} MB/s | ratio {psqlIn / oursIn * 100:F0} % (goal ≥ 80 %) | {Mem(memIn)}");
        Console.WriteLine($"  export    psql \\copy {psqlOut.TotalSeconds,6:F2} s {mb / psqlOut.TotalSeconds,7:F1} MB/s | DbStudio {oursOut.TotalSeconds,6:F2} s " +
                          $"{mb / oursOut.TotalSeconds,7:F1} MB/s | ratio {psqlOut / oursOut * 100:F0} % (goal ≥ 80 %) | {Mem(memOut)}");
        Console.WriteLine($"  filtered  psql \\copy {psqlFiltered.TotalSeconds,6:F2} s {filteredMb / psqlFiltered.TotalSeconds,7:F1} MB/s | DbStudio {oursFiltered.TotalSeconds,6:F2} s " +
                          $"{filteredMb / oursFiltered.TotalSeconds,7:F1} MB/s | ratio {psqlFiltered / oursFiltered * 100:F0} % | {Mem(memFiltered)}   (qty < 500: {filteredMb:F1} MB)");
        try { Directory.Delete(dir, true); } catch (IOException) { }
    }

    private static async Task RunAsync(string psql, string url, string command)
    {
        var psi = new ProcessStartInfo(psql) { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(url);
        psi.ArgumentList.Add("-v");
        psi.ArgumentList.Add("ON_ERROR_STOP=1");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException("psql: " + await err);
    }

    private static async Task<TimeSpan> TimeAsync(Func<Task> work)
    {
        var sw = Stopwatch.StartNew();
        await work();
        return sw.Elapsed;
    }

    /// <summary>The process's peak resident memory while something ran, and how far above its start that was.</summary>
    private readonly record struct Memory(long Peak, long Rise);

    /// <summary>Runs <paramref name="work"/> timing it, with the process's peak resident memory meanwhile.</summary>
    private static async Task<(TimeSpan Elapsed, Memory Memory)> SampledAsync(Func<Task> work)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var before = self.WorkingSet64;
        long peak = before;
        using var stop = new CancellationTokenSource();
        var sampling = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                self.Refresh();
                peak = Math.Max(peak, self.WorkingSet64);
                try { await Task.Delay(20, stop.Token); } catch (OperationCanceledException) { }
            }
        });
        var elapsed = await TimeAsync(work);
        await stop.CancelAsync();
        await sampling;
        return (elapsed, new Memory(peak, peak - before));
    }
}
