using System.Globalization;
using CsvHelper;
using DbStudio.Core.Console;

namespace DbStudio.Web.Components.Panel;

/// <summary>A console result as CSV (RFC 4180, via CsvHelper). NULL becomes an empty field; text that a
/// spreadsheet would run as a formula (=, +, -, @ …) is escaped.</summary>
public static class CsvExport
{
    public static string ToCsv(StatementResult result)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = CsvWriter.Create(text, new CsvWriterOptions { Injection = CsvInjection.Escape }, false))
        {
            csv.WriteHeader((result.Columns ?? []).Select(c => c.Name).ToArray());
            foreach (var row in result.Rows ?? []) csv.WriteRecord(row.Select(v => v ?? "").ToArray());
            csv.Flush();
        }
        return text.ToString();
    }
}
