import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.net.URL;
import morfologik.stemming.Dictionary;
import morfologik.stemming.DictionaryLookup;
import morfologik.stemming.WordData;

/** Prints every entry of a morfologik dictionary on the class path as "form TAB lemma TAB tag". */
public class DumpDictionary {
    public static void main(String[] args) throws Exception {
        URL url = DumpDictionary.class.getResource(args[0]);
        if (url == null) {
            throw new IllegalArgumentException("not on the class path: " + args[0]);
        }
        Dictionary dictionary = Dictionary.read(url);
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out, "UTF-8")));
        for (WordData entry : new DictionaryLookup(dictionary)) {
            out.print(entry.getWord());
            out.print('\t');
            out.print(entry.getStem());
            out.print('\t');
            out.println(entry.getTag());
        }
        out.flush();
    }
}
