// What the Data tab's import dialog shows before anything is imported: the file's header, its first rows, and a column
// type for each column inferred from a sample of the file (one of the panel's 13 types; the person may change it before
// the table is created). Only the start of the file is read; the stream is left to the caller.
using System.Globalization;
using System.Text.Json;
using CsvHelper;

namespace DbStudio.Core.Csv;

/// <summary>The header, the first rows (null = an empty field, as COPY reads it), a type per column, and how many rows the
/// types were inferred from.</summary>
public sealed record CsvPreview(IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string?>> Rows, IReadOnlyList<string> Types,
    int Sampled);

public static class CsvPreviewReader
{
    /// <summary>Reads the header and up to <paramref name="sample"/> records; shows the first <paramref name="show"/>.</summary>
    public static async Task<CsvPreview> ReadAsync(Stream source, int show = 5, int sample = 1000, CancellationToken ct = default)
    {
        await using var csv = CsvReader.Create(source, new CsvReaderOptions { HasHeader = false }, true);
        if (!await csv.ReadAsync(ct) || csv.FieldCount == 0)
            throw new CsvImportException("The file is empty: its first line must name the columns",
                [new ImportError(1, null, "22P04", "The first line must name the columns")]);
        var header = Enumerable.Range(0, csv.FieldCount).Select(i => csv.GetString(i)).ToList();
        var values = header.Select(_ => new List<string>()).ToList();
        var rows = new List<IReadOnlyList<string?>>();
        var sampled = 0;
        while (sampled < sample && await csv.ReadAsync(ct))
        {
            sampled++;
            var row = new string?[header.Count];
            for (var i = 0; i < header.Count && i < csv.FieldCount; i++)
            {
                row[i] = csv.IsEmpty(i) ? null : csv.GetString(i);
                if (!string.IsNullOrEmpty(row[i])) values[i].Add(row[i]!);
            }
            if (rows.Count < show) rows.Add(row);
        }
        return new CsvPreview(header, rows, [.. values.Select(Infer)], sampled);
    }

    /// <summary>
    /// The narrowest of the panel's types that every value converts to: INTEGER, BIGINT, NUMERIC, FLOAT, BOOLEAN, UUID,
    /// DATE, TIMESTAMPTZ, JSONB — else TEXT (also for a column with no values).
    /// </summary>
    public static string Infer(IReadOnlyCollection<string> values)
    {
        if (values.Count == 0) return "TEXT";
        bool All(Func<string, bool> test) => values.All(v => test(v.Trim()));
        if (All(v => int.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))) return "INTEGER";
        if (All(v => long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))) return "BIGINT";
        if (All(v => decimal.TryParse(v, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out _)))
            return "NUMERIC";
        if (All(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _))) return "FLOAT";
        if (All(v => v.ToLowerInvariant() is "true" or "false" or "t" or "f" or "yes" or "no")) return "BOOLEAN";
        if (All(v => Guid.TryParseExact(v, "D", out _))) return "UUID";
        if (All(v => DateOnly.TryParseExact(v, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))) return "DATE";
        if (All(v => v.Length >= 16 && v[4] == '-' && DateTimeOffset.TryParse(v, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out _)))
            return "TIMESTAMPTZ";
        if (All(IsJson)) return "JSONB";
        return "TEXT";
    }

    private static bool IsJson(string v)
    {
        if (v.Length == 0 || v[0] is not ('{' or '[')) return false;
        try { using var _ = JsonDocument.Parse(v); return true; }
        catch (JsonException) { return false; }
    }
}

/// <summary>A read-only stream that reports how many bytes have been read through it (an import's progress bar).</summary>
public sealed class ProgressStream(Stream inner, Action<long> progress) : Stream
{
    private long _read;

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) =>
        Count(await inner.ReadAsync(buffer, ct));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    private int Count(int n)
    {
        _read += n;
        progress(_read);
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => inner.Length;
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }
}
